"""SegNet (models/segnet.py): the decoder unpools at the encoder's own argmax positions.

The whole-model gradient checks are in test_models.py.
"""
import numpy as np

from minimal_seg.backend import to_numpy
from minimal_seg.models import SegNet


def _record(layer, store):
    """Wrap layer.forward to keep its last input and output in ``store`` (undone by ``del layer.forward``)."""
    forward = layer.forward

    def recording(x, *args, **kwargs):
        store["in"], store["out"] = x, forward(x, *args, **kwargs)
        return store["out"]

    layer.forward = recording


def test_segnet_unpools_at_the_encoder_argmax_positions(xp, rng):
    model = SegNet(1, 3, base_channels=4, depth=2)
    seen = [{} for _ in range(2)]
    encoded = {}
    _record(model.enc[1], encoded)
    for level in range(2):
        _record(model.unpools[level], seen[level])
    model(xp.asarray(rng.standard_normal((2, 1, 8, 8)).astype(np.float32)))

    # the deepest unpool sees the pooled encoder output: it keeps each 2x2 window's maximum, in place
    f = to_numpy(encoded["out"])  # (2, 8, 4, 4)
    windows = f.reshape(2, 8, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 8, 2, 2, 4)
    first_max = windows.argmax(axis=-1)
    mask = np.zeros_like(windows, dtype=bool)
    np.put_along_axis(mask, first_max[..., None], True, axis=-1)
    mask = mask.reshape(2, 8, 2, 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(f.shape)
    np.testing.assert_array_equal(to_numpy(seen[1]["out"]), np.where(mask, f, 0))

    # every level: nonzero exactly at the saved indices (where the unpooled value is nonzero)
    for level in range(2):
        out, x = to_numpy(seen[level]["out"]), to_numpy(seen[level]["in"])
        indices = to_numpy(model.pools[level].indices)
        at_indices = np.take_along_axis(out.reshape(*out.shape[:2], -1), indices.reshape(*x.shape[:2], -1), axis=2)
        np.testing.assert_array_equal(at_indices.reshape(x.shape), x)
        assert np.count_nonzero(out) == np.count_nonzero(x) <= out.size // 4
    for layer in (model.enc[1], *model.unpools):
        del layer.forward


def test_unpools_are_tied_to_the_pools_of_their_level():
    model = SegNet(1, 2, base_channels=2, depth=3)
    assert all(unpool.pool is pool for unpool, pool in zip(model.unpools, model.pools))
    assert list(model.children())[:4] == ["enc0", "pool0", "unpool0", "dec0"]
