import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from storage.dataset import ClipWindowDataset
from storage.errors import StorageError
from storage.layout import DatasetLayout
from storage.manifest import write_manifest
from storage.shards import ShardReader
from storage.synthetic import write_synthetic_clip


@pytest.fixture
def street(tmp_path):
    layout = DatasetLayout(tmp_path, "street")
    records = [write_synthetic_clip(layout, f"c{k}", seed=k, width=64, height=32, n_frames=9, split="train")
               for k in range(2)]
    write_manifest(layout, records)
    return layout


def test_windows_follow_the_batch_contract(street):
    dataset = ClipWindowDataset(street, n_frames=4, stride=2)
    assert len(dataset) == 2 * 3  # starts 0, 2, 4 in each 9-frame clip
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch["image"].shape == (2, 4, 3, 32, 64) and batch["image"].dtype == torch.float32
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["semantic"].shape == (2, 4, 32, 64) and batch["semantic"].dtype == torch.int64
    assert batch["instance"].shape == (2, 4, 32, 64)
    assert batch["flow"].shape == (2, 3, 2, 32, 64) and batch["occlusion"].shape == (2, 3, 1, 32, 64)
    sample = dataset[1]  # clip c0 from frame 2: compare with the shards directly
    rgb = ShardReader(street.shard_path("rgb", "c0")).read(2, 6)
    assert np.array_equal(((sample["image"][0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy(), rgb[0]["payload"])
    flow = ShardReader(street.shard_path("flow", "c0")).read(2, 5)
    assert torch.allclose(sample["flow"][2], torch.from_numpy(flow[2]["payload"]))


def test_workers_split_the_windows_without_overlap(street):
    shares = [ClipWindowDataset(street, n_frames=4, stride=2, rank=r, world_size=2).windows for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 3 and not set(shares[0]) & set(shares[1])
    uneven = [ClipWindowDataset(street, n_frames=4, stride=2, rank=r, world_size=4).windows for r in range(4)]
    assert [len(share) for share in uneven] == [2, 2, 2, 2]  # 6 windows wrap around to 8: ranks stay in lockstep
    assert set().union(*map(set, uneven)) == set(shares[0]) | set(shares[1])


def test_missing_stage_and_short_clips_are_clear_errors(street):
    with pytest.raises(StorageError, match="stage 'sketch' has none for 2 clip"):
        ClipWindowDataset(street, n_frames=4, stages=("sketch",))
    with pytest.raises(StorageError, match="no 20-frame training window"):
        ClipWindowDataset(street, n_frames=20)
    with pytest.raises(StorageError, match="no usable val-split clips"):
        ClipWindowDataset(street, n_frames=4, split="val")


def test_declared_stages_become_batch_keys_by_payload_kind(street):
    """Any stage is read under its own name: 2-D payloads stay integer ids, pictures become [-1, 1] floats."""
    from storage.dataset import clip_batches, frames_tensor
    from storage.stages import write_stage

    for clip in ("c0", "c1"):
        rgb = ShardReader(street.shard_path("rgb", clip)).read(0, 9)
        write_stage(street, "sketch", clip, backend="test", config={}, code_version="t",
                    frames=lambda rgb=rgb: ({"payload": 255 - f["payload"]} for f in rgb))
    sample = ClipWindowDataset(street, n_frames=4, stages=("semantic", "sketch"))[0]
    assert set(sample) == {"image", "semantic", "sketch"}
    assert sample["semantic"].dtype == torch.int64 and sample["sketch"].shape == (4, 3, 32, 64)
    assert torch.allclose(sample["sketch"], -sample["image"], atol=1e-5)  # 255 - x is the negated picture
    chunks = list(clip_batches(street, "c0", ("semantic", "sketch"), (32, 16), chunk=4))
    assert [c["image"].shape[0] for c in chunks] == [4, 4, 1] and chunks[0]["semantic"].shape == (4, 16, 32)
    with pytest.raises(StorageError, match="pictures"):
        frames_tensor(np.zeros((2,)))
