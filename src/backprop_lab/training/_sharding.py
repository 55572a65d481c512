"""Where the engine's arrays live: one ``Mesh`` over the devices of every process.

A vectorized sweep shards its lanes axis over the mesh (lanes are padded with
copies of the first to a multiple of the device count; the copies' results are
dropped). A single run is data parallel: every minibatch is sharded over the
mesh by rows (a ``with_sharding_constraint`` inside the training step), each
device computes the δ rule on its rows, and XLA inserts the all-reduce that
sums their gradients. The full data arrays are replicated (each process loads
its data set and supplies the shards its own devices hold). Only ``jax.sharding``
is used (no pmap): the same program runs on one device or many.

On one process with one device everything here is the identity.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "devices"
#: A pytree of arrays (a model, an optimizer state, data); typed as jax types them, Any.
PyTree = Any


def local_devices(devices: int | None) -> int:
    """How many devices of this process a run uses: ``devices`` (None: all of them).

    Raises:
        ValueError: more devices asked for than this process has.
    """
    available = jax.local_device_count()
    if devices is None:
        return available
    if devices > available:
        raise ValueError(
            f"devices={devices} is more than the {available} {jax.default_backend()} "
            f"device(s) of this process; use null (all) or at most {available}"
        )
    return devices


def _mesh(per_process: int) -> Mesh:
    chosen = []
    for p in range(jax.process_count()):
        mine = sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)
        chosen += mine[:per_process]
    return Mesh(np.array(chosen), (AXIS,))


@dataclasses.dataclass(frozen=True)
class Placement:
    """How one group of lanes is laid out on the mesh.

    Attributes:
        mesh: the devices used, one axis.
        lanes: the number of real lanes; pad: copies of lane 0 added to fill the mesh.
        shard_lanes: whether the lanes axis is sharded (a sweep) or the batch is (one run).
        batch: the sharding of a minibatch (rows over the mesh), or None.
    """

    mesh: Mesh
    lanes: int
    pad: int
    shard_lanes: bool
    batch: NamedSharding | None

    @property
    def devices(self) -> int:
        return int(self.mesh.devices.size)

    def _put(self, tree: PyTree, spec: PartitionSpec) -> PyTree:
        sharding = NamedSharding(self.mesh, spec)

        def put(leaf: Any) -> jax.Array:
            host = np.asarray(leaf)
            if jax.process_count() == 1:
                return jax.device_put(host, sharding)
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return jax.tree.map(put, tree)

    def put_lanes(self, tree: PyTree) -> PyTree:
        """Host values with a leading lanes axis (padded already), laid out lane-sharded."""
        return self._put(tree, PartitionSpec(AXIS) if self.shard_lanes else PartitionSpec())

    def replicate(self, tree: PyTree) -> PyTree:
        """Host values every device holds whole."""
        return self._put(tree, PartitionSpec())

    def gather(self, tree: PyTree) -> PyTree:
        """Device values back to host NumPy arrays on every process, padding dropped."""
        if jax.process_count() == 1:
            host = jax.tree.map(np.asarray, tree)
        else:
            from jax.experimental import multihost_utils

            host = jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), tree)
        return host


def plan(lanes: int, batch_size: int, devices: int | None) -> tuple[Placement, str]:
    """Lay out ``lanes`` runs of minibatch ``batch_size`` on ``devices`` per process.

    Returns:
        The :class:`Placement` and a note for the log ("" when nothing was adjusted).
    """
    per_process = local_devices(devices)
    total = per_process * jax.process_count()
    note = ""
    if lanes > 1:
        mesh = _mesh(per_process)
        return Placement(mesh, lanes, (-lanes) % total, total > 1, None), note
    if batch_size % total:
        # each device takes an equal share of the rows: use the most devices that divide the batch
        fit = (
            max(d for d in range(1, per_process + 1) if batch_size % (d * jax.process_count()) == 0)
            if batch_size % jax.process_count() == 0
            else 1
        )
        note = (
            f"batch_size={batch_size} does not split evenly over {total} devices: "
            f"using {fit * jax.process_count()}"
        )
        per_process = fit
        total = fit * jax.process_count()
    mesh = _mesh(per_process)
    even = batch_size % total == 0
    batch = NamedSharding(mesh, PartitionSpec(AXIS, None)) if total > 1 and even else None
    return Placement(mesh, 1, 0, False, batch), note


def process_index() -> int:
    """This process's index among ``jax.process_count()`` processes."""
    return jax.process_index()


def agree(values: list[int]) -> list[int]:
    """Process 0's integers, on every process (identity on one process)."""
    if jax.process_count() == 1:
        return values
    from jax.experimental import multihost_utils

    return [int(v) for v in multihost_utils.broadcast_one_to_all(np.asarray(values, np.int64))]
