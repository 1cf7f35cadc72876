"""iter_transform: blocks in input order, lazily, with one progress bar."""

import warnings

import numpy as np
import pytest
from storage_helpers import computed, decode_count, photos, tiny  # noqa: F401 (fixtures)


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 8, 100])
@pytest.mark.parametrize("cached", [False, True])
def test_blocks_concatenated_equal_transform(photos, computed, chunk_size, cached, tmp_path):
    est = tiny(cache=tmp_path if cached else None).fit(photos)
    blocks = list(est.iter_transform(photos, chunk_size=chunk_size))
    assert all(block.dtype == np.float32 for block in blocks)
    assert np.array_equal(np.concatenate(blocks), computed)
    rows = -(-chunk_size // 4) * 4  # whole batches of 4
    assert [len(b) for b in blocks[:-1]] == [rows] * (len(blocks) - 1) and 0 < len(blocks[-1]) <= rows


def test_second_pass_from_a_warm_store_gives_the_same_blocks(photos, computed, tmp_path, decode_count):
    est = tiny(cache=tmp_path, num_workers=2).fit(photos)
    list(est.iter_transform(photos, chunk_size=4))
    decode_count.clear()
    assert np.array_equal(np.concatenate(list(est.iter_transform(photos, chunk_size=4))), computed)
    assert decode_count == []


def test_it_is_lazy_decoding_at_most_a_block_and_the_read_ahead(photos, decode_count):
    est = tiny(num_workers=1).fit(photos)
    blocks = est.iter_transform(photos, chunk_size=4)
    assert decode_count == []  # nothing before the first block is asked for
    next(blocks)
    # The block (4) plus at most two batches read ahead.
    assert 4 <= len(decode_count) <= 4 + 2 * 4
    blocks.close()


def test_input_is_checked_when_called_not_when_consumed(photos):
    est = tiny().fit(photos)
    with pytest.raises(ValueError, match=r"X\[1\] is missing"):
        est.iter_transform([photos[0], None])
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        est.iter_transform(photos, chunk_size=0)


def test_failures_give_nan_rows_in_place_and_one_warning_at_the_end(photos, computed, tmp_path):
    items = [photos[0], None, str(tmp_path / "gone.png"), photos[1], photos[2], None]
    est = tiny(on_error="nan").fit(photos)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = np.concatenate(list(est.iter_transform(items, chunk_size=4)))
    assert np.isnan(out[[1, 2, 5]]).all()
    assert np.array_equal(out[[0, 3, 4]], computed[:3])
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and messages[0].startswith("3 of 6 images")


@pytest.mark.parametrize("cached", [False, True])
def test_progress_bar_counts_images_across_blocks(photos, monkeypatch, cached, tmp_path):
    import sktransfer.feature_extraction._streaming as streaming

    bars = []

    class Bar:
        def __init__(self, total):
            self.total, self.count, self.closed = total, 0, False
            bars.append(self)

        def update(self, n):
            self.count += n

        def close(self):
            self.closed = True

    monkeypatch.setattr(streaming, "_progress", Bar)
    est = tiny(verbose=1, cache=tmp_path if cached else None).fit(photos)
    if cached:
        est.transform(photos[:5])  # some hits, some misses
    bars.clear()
    list(est.iter_transform(photos, chunk_size=4))
    (bar,) = bars
    assert bar.total == bar.count == len(photos) and bar.closed
