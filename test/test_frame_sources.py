"""iter_frames over image folders, single images and videos (hand-written files)."""


import numpy as np
import pytest

from segformer_ros.errors import ConfigError, ImageFormatError
from segformer_ros.frame_sources import iter_frames, list_images

cv2 = pytest.importorskip('cv2')
from shared_assets import BUNDLED_VIDEO as VIDEO  # noqa: E402


def _frame(value: int) -> np.ndarray:
    img = np.zeros((6, 8, 3), np.uint8)
    img[..., 0] = value  # blue channel carries the frame's identity
    img[0, 0] = (1, 2, 3)
    return img


@pytest.fixture
def folder(tmp_path):
    for name, value in (('b.png', 20), ('a.png', 10), ('c.PNG', 30)):
        assert cv2.imwrite(str(tmp_path / name), _frame(value))
    (tmp_path / 'notes.txt').write_text('not an image')
    (tmp_path / 'sub').mkdir()
    return tmp_path


def test_folder_is_read_in_sorted_order_as_bgr(folder):
    assert [p.name for p in list_images(folder)] == ['a.png', 'b.png', 'c.PNG']
    frames = list(iter_frames(folder))
    assert [i for i, _ in frames] == [0, 1, 2]
    assert [int(f[1, 1, 0]) for _, f in frames] == [10, 20, 30]
    assert frames[0][1].shape == (6, 8, 3) and frames[0][1].dtype == np.uint8
    assert tuple(frames[0][1][0, 0]) == (1, 2, 3)  # channels not swapped


def test_loop_and_max_frames(folder):
    frames = list(iter_frames(folder, loop=True, max_frames=7))
    assert [i for i, _ in frames] == list(range(7))
    assert [int(f[1, 1, 0]) for _, f in frames] == [10, 20, 30, 10, 20, 30, 10]
    assert list(iter_frames(folder, max_frames=0)) == []
    assert len(list(iter_frames(folder, max_frames=2))) == 2


def test_single_image(folder):
    frames = list(iter_frames(folder / 'b.png', loop=True, max_frames=3))
    assert len(frames) == 3 and all(int(f[1, 1, 0]) == 20 for _, f in frames)


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match='does not exist'):
        list(iter_frames(tmp_path / 'missing.mp4'))
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ConfigError, match='has no'):
        list(iter_frames(empty))
    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    with pytest.raises(ImageFormatError, match='cannot read image'):
        list(iter_frames(broken))
    junk = tmp_path / 'junk.mp4'
    junk.write_bytes(b'\0' * 64)
    with pytest.raises(ImageFormatError):
        list(iter_frames(junk))


def test_written_video_round_trip(tmp_path):
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10.0, (32, 16))
    assert writer.isOpened()
    for value in (0, 120, 240):
        writer.write(np.full((16, 32, 3), value, np.uint8))
    writer.release()
    frames = list(iter_frames(path))
    assert len(frames) == 3
    assert [abs(int(f.mean()) - v) <= 3 for (_, f), v in zip(frames, (0, 120, 240))] == [True] * 3
    looped = list(iter_frames(path, loop=True, max_frames=5))
    assert [i for i, _ in looped] == [0, 1, 2, 3, 4]
    assert abs(int(looped[3][1].mean())) <= 3  # back to the first frame


def test_shared_video():
    frames = list(iter_frames(VIDEO, max_frames=3))
    assert len(frames) == 3
    assert all(f.shape == (540, 960, 3) and f.dtype == np.uint8 for _, f in frames)
