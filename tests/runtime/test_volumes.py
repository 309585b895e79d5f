"""The runtime's volume check (``open_volume``) with grants from a real in-process CAS: a
``rollback: protected`` volume opens only in the state the CAS recorded, read-only input
volumes included (docs/runtime.md, step 4; docs/cas.md, "Volume tags")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from securetf.errors import RollbackError
from securetf.protocol import VolumeGrant
from securetf.runtime.volumes import open_volume
from securetf.volume import Volume, VolumeKey, put_file, seal_tree
from tests.cas.support import DATASET_KEY, Clock, Owners, Runtime, owner_request, policy_cas

CAS_URL = "https://cas.example:8081"


class Deployment:
    """A CAS with the ``cancer`` policy (dataset: imported key, mounted ro by ``train``)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp, self.clock, self.owners = tmp_path, Clock(), Owners()
        self.cas = policy_cas(f"sqlite:///{tmp_path / 'cas.db'}", tmp_path, self.clock, self.owners)

    def grants(self) -> dict[str, VolumeGrant]:
        """What the CAS hands an attested ``train`` instance for its volumes."""
        runtime = Runtime(home=self.tmp / "home")
        response = self.cas.provision(runtime.request(self.cas.nonce().nonce))
        return runtime.open(response).volumes

    def register(self, volume: str, tag: str, version: int) -> None:
        """An owner registers a volume's state (``securetf volume register``)."""
        state: dict[str, str | int] = {"tag": tag, "version": version}
        request = owner_request(self.cas, self.owners.bob, self.clock, "register", volume, state)
        self.cas.register_tag("cancer", volume, request)

    def open(self, volume: str, storage: Path) -> Volume:
        """The runtime's check, as ``securetf run`` makes it for ``train``."""
        return open_volume(volume, self.grants()[volume], storage, policy="cancer", cas=CAS_URL)


def _seal_dataset(tmp_path: Path, text: str) -> Path:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "table.csv").write_text(text)
    sealed = tmp_path / "sealed-dataset"
    seal_tree(plain, sealed, VolumeKey(DATASET_KEY))
    shutil.rmtree(plain)
    return sealed


def _volume_put(sealed: Path, tmp_path: Path, text: str) -> tuple[str, int]:
    """``securetf volume put``: the owner commits a new version; its tag and version."""
    update = tmp_path / "update.csv"
    update.write_text(text)
    with Volume.open(sealed, VolumeKey(DATASET_KEY), writable=True) as vol:
        put_file(vol, update, "table.csv")
        tag = vol.commit()
        return tag, vol.version


def test_an_older_copy_of_an_updated_read_only_dataset_is_refused(tmp_path: Path) -> None:
    """Attack: the owner seals a dataset, keeps a copy, updates it with ``volume put``; the
    operator runs the service with the older copy. Only the registered state may open."""
    dep = Deployment(tmp_path)
    sealed = _seal_dataset(tmp_path, "id,label\n1,0\n")
    old = tmp_path / "old-copy"
    shutil.copytree(sealed, old)
    tag, version = _volume_put(sealed, tmp_path, "id,label\n1,1\n")
    # Before the owner registers any state, no copy opens, and the error says what to do.
    for copy in (old, sealed):
        with pytest.raises(RollbackError) as refused:
            dep.open("dataset", copy)
        assert (
            f"securetf volume register {copy} --policy cancer --volume dataset --cas {CAS_URL}"
            in str(refused.value)
        )
    # The owner registers the update: the older copy stays refused, the update opens.
    dep.register("dataset", tag, version)
    with pytest.raises(RollbackError, match="rolled back"):
        dep.open("dataset", old)
    with dep.open("dataset", sealed) as vol:
        assert (vol.tag, vol.version) == (tag, 2)
        with vol.open_file("table.csv") as f:
            assert f.read() == b"id,label\n1,1\n"


def test_a_newer_state_than_the_registered_one_needs_registering(tmp_path: Path) -> None:
    dep = Deployment(tmp_path)
    sealed = _seal_dataset(tmp_path, "id,label\n1,0\n")
    with Volume.open(sealed, VolumeKey(DATASET_KEY)) as vol:
        dep.register("dataset", str(vol.tag), vol.version)
    _volume_put(sealed, tmp_path, "id,label\n1,1\n")
    with pytest.raises(RollbackError, match=f"securetf volume register {sealed} "):
        dep.open("dataset", sealed)


def test_a_protected_read_write_volume_without_a_recorded_state_starts_only_empty(
    tmp_path: Path,
) -> None:
    """Before the first commit the CAS has no tag of the model volume: the runtime creates
    it where none exists, and refuses any volume the operator put there instead."""
    dep = Deployment(tmp_path)
    with dep.open("model", tmp_path / "new-model") as vol:
        assert (vol.tag, vol.version) == (None, 0)
    # A volume sealed with the model key (by an owner, or an earlier run whose tag move
    # failed) is some state the CAS never recorded: refused until an owner registers it.
    placed = tmp_path / "placed-model"
    model_key = VolumeKey(dep.grants()["model"].key)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.bin").write_bytes(b"weights v1")
    seal_tree(tmp_path / "weights", placed, model_key)
    with pytest.raises(RollbackError, match="securetf volume register"):
        dep.open("model", placed)
    with Volume.open(placed, model_key) as vol:
        dep.register("model", str(vol.tag), vol.version)
    with dep.open("model", placed) as vol:
        assert vol.version == 1
