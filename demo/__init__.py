"""``make demo``: securetf end to end on embedded defaults."""
