"""The threaded batch decoder: order, failures, cancellation, no leaked threads."""

import io
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from sktransfer.image import ImageLoadError
from sktransfer.image._batch_decoder import (
    BatchDecoder,
    decode_all,
    decode_item_or_error,
    item_source,
    resolve_num_workers,
)
from sktransfer.image._transforms import pil_to_chw


def _images(n, side=4):
    """``n`` distinct images: image i is filled with the value i."""
    return [np.full((side, side, 3), i, dtype=np.uint8) for i in range(n)]


def _decoder_threads():
    return [t for t in threading.enumerate() if t.name.startswith("sktransfer-decode")]


class _SlowTransform:
    """pil_to_chw that records the images it saw and fails on chosen ones."""

    def __init__(self, fail_on=(), delay=0.0):
        self.fail_on = set(fail_on)
        self.delay = delay
        self.seen = []
        self.lock = threading.Lock()

    def __call__(self, image):
        value = image.getpixel((0, 0))[0]
        with self.lock:
            self.seen.append(value)
        if value in self.fail_on:
            raise RuntimeError(f"boom on {value}")
        time.sleep(self.delay)
        return pil_to_chw(image)


@pytest.mark.parametrize("num_workers", [0, 1, 3])
@pytest.mark.parametrize("batch_size", [1, 3, 10])
def test_batches_cover_every_item_in_order(num_workers, batch_size):
    items = _images(7)
    batches = list(BatchDecoder(items, pil_to_chw, batch_size=batch_size, num_workers=num_workers))
    starts = [start for start, _, _ in batches]
    assert starts == list(range(0, 7, batch_size))
    values = torch.cat([batch for _, batch, _ in batches])[:, 0, 0, 0].tolist()
    assert values == list(range(7))
    assert all(failures == [] for _, _, failures in batches)


def test_on_error_nan_gives_black_images_and_reports_failures(tmp_path):
    items = _images(4)
    items[2] = str(tmp_path / "missing.png")
    batches = list(BatchDecoder(items, pil_to_chw, batch_size=3, num_workers=2, on_error="nan"))
    (_, first, first_failures), (_, second, second_failures) = batches
    assert [index for index, _ in first_failures] == [2] and second_failures == []
    error = first_failures[0][1]
    assert isinstance(error, ImageLoadError) and error.source == items[2]
    assert first[2].sum().item() == 0 and first[1, 0, 0, 0].item() == 1


def test_on_error_raise_names_the_file(tmp_path):
    missing = str(tmp_path / "gone.jpg")
    with pytest.raises(ImageLoadError, match="gone.jpg: file not found"):
        list(BatchDecoder(_images(2) + [missing], pil_to_chw, batch_size=2, num_workers=2))


def test_unexpected_exception_in_transform_becomes_image_load_error():
    transform = _SlowTransform(fail_on={1})
    with pytest.raises(ImageLoadError, match=r"X\[1\] \(array 4x4x3\): unexpected RuntimeError: boom on 1"):
        list(BatchDecoder(_images(3), transform, batch_size=2, num_workers=0))
    failures = decode_all(_images(3), _SlowTransform(fail_on={1}), on_error="nan")[1]
    assert [(index, type(err).__name__) for index, err in failures] == [(1, "ImageLoadError")]
    assert isinstance(failures[0][1].__cause__, RuntimeError)


def test_memory_error_is_not_disguised():
    def out_of_memory(image):
        raise MemoryError

    with pytest.raises(MemoryError):
        decode_item_or_error(_images(1)[0], 0, out_of_memory, None, "X", "nan")


def test_error_cancels_queued_decodes_and_leaves_no_thread():
    # One worker, slow decodes: when item 0 fails, the items of the batches
    # submitted ahead are still queued and must be cancelled, not decoded.
    transform = _SlowTransform(fail_on={0}, delay=0.05)
    decoder = BatchDecoder(_images(12), transform, batch_size=2, num_workers=1)
    with pytest.raises(ImageLoadError, match="boom on 0"):
        list(decoder)
    submitted = 6  # batches 0, 1 and 2 are in flight when batch 0 is collated
    assert len(transform.seen) < submitted
    assert _decoder_threads() == []


def test_consumer_stopping_early_cancels_queued_decodes():
    transform = _SlowTransform(delay=0.05)
    batches = iter(BatchDecoder(_images(12), transform, batch_size=2, num_workers=1))
    start, batch, _ = next(batches)
    assert start == 0 and batch[:, 0, 0, 0].tolist() == [0, 1]
    batches.close()
    # Batches 1 and 2 were queued; closing must not decode all of them.
    assert len(transform.seen) < 6
    assert _decoder_threads() == []


def test_decode_all_stacks_or_lists():
    items = _images(3)
    stacked, failures = decode_all(items, pil_to_chw, num_workers=2)
    assert stacked.shape == (3, 3, 4, 4) and failures == []
    assert stacked[:, 0, 0, 0].tolist() == [0, 1, 2]
    listed, _ = decode_all(items, pil_to_chw, stack=False)
    assert [t[0, 0, 0].item() for t in listed] == [0, 1, 2]


def test_decode_all_raises_when_every_item_failed(tmp_path):
    items = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    with pytest.raises(ImageLoadError, match="a.png"):
        decode_all(items, pil_to_chw, on_error="nan")
    listed, failures = decode_all(items, pil_to_chw, on_error="nan", stack=False)
    assert listed == [None, None] and [i for i, _ in failures] == [0, 1]


def test_multi_frame_tiff_in_a_batch_uses_its_first_frame(tmp_path):
    path = tmp_path / "stack.tif"
    first = Image.new("RGB", (6, 5), (10, 20, 30))
    first.save(path, save_all=True, append_images=[Image.new("L", (3, 3), 200)])
    ((_, batch, failures),) = BatchDecoder([str(path)], pil_to_chw, batch_size=1)
    assert failures == [] and batch.shape == (1, 3, 5, 6)
    assert batch[0, :, 0, 0].tolist() == [10, 20, 30]


def test_item_source_names_paths_and_objects():
    assert item_source("a/b.png", 3) == "a/b.png"
    assert item_source(io.BytesIO(), 2, input_name="X_target") == "X_target[2] (BytesIO)"


def test_resolve_num_workers():
    assert resolve_num_workers(3) == 3 and resolve_num_workers("2") == 2
    assert 1 <= resolve_num_workers("auto") <= 4
