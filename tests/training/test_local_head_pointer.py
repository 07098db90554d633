"""A stopped head of ours leaves no stale "current cluster" pointer (as `ray stop` would not): a later local Ray
had Ray Train's placement-group cleaner look up the dead head and print GCS time-out tracebacks."""

from __future__ import annotations

from models.training.local_head import forget_head_address


def test_the_pointer_to_a_stopped_head_is_removed_and_another_heads_is_kept(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    pointer = tmp_path / "ray" / "ray_current_cluster"
    pointer.parent.mkdir()
    pointer.write_text("192.0.2.2:53977")
    forget_head_address(61000)  # another head's pointer: not ours to touch
    assert pointer.read_text() == "192.0.2.2:53977"
    forget_head_address(53977)
    assert not pointer.exists()
    forget_head_address(53977)  # absent: nothing to do, no error
