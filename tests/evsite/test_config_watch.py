import asyncio
from pathlib import Path

from evsite.bus import EventBus
from evsite.config import load_config
from evsite.config_watch import TOPIC_CHANGED, TOPIC_REJECTED, ConfigChange, ConfigRejected, ConfigWatcher

REPO = Path(__file__).resolve().parents[2]


def _watcher(tmp_path: Path, manual_clock) -> tuple[ConfigWatcher, EventBus, Path]:
    path = tmp_path / "config.toml"
    path.write_text((REPO / "config.toml").read_text())
    bus = EventBus()
    return ConfigWatcher(path, load_config(path), bus, manual_clock, interval_s=1.0), bus, path


def test_valid_edit_is_applied_and_announced(tmp_path, manual_clock):
    watcher, bus, path = _watcher(tmp_path, manual_clock)
    sub = bus.subscribe(TOPIC_CHANGED)
    path.write_text(path.read_text().replace("rating_a = 400", "rating_a = 600"))
    change = watcher.check()
    assert isinstance(change, ConfigChange)
    assert change.sections == ("service",)
    assert watcher.current.service.rating_a == 600
    assert sub.get_nowait()[1] is change
    assert watcher.check() is None  # unchanged file: nothing to do


def test_bad_edit_is_rejected_and_running_config_stays(tmp_path, manual_clock):
    watcher, bus, path = _watcher(tmp_path, manual_clock)
    sub = bus.subscribe(TOPIC_REJECTED)
    path.write_text(path.read_text().replace("rating_a = 400", "rating_a = -5"))
    result = watcher.check()
    assert isinstance(result, ConfigRejected)
    assert "service.rating_a" in result.message
    assert watcher.current.service.rating_a == 400
    assert sub.get_nowait()[1] is result
    # Fixing the file afterwards is picked up.
    path.write_text(path.read_text().replace("rating_a = -5", "rating_a = 500"))
    assert isinstance(watcher.check(), ConfigChange)
    assert watcher.current.service.rating_a == 500


async def test_run_polls_on_the_injected_clock(tmp_path, manual_clock):
    watcher, bus, path = _watcher(tmp_path, manual_clock)
    sub = bus.subscribe(TOPIC_CHANGED)
    task = asyncio.create_task(watcher.run())
    await asyncio.sleep(0)
    path.write_text(path.read_text().replace("port = 9000", "port = 9100"))
    assert sub.get_nowait() is None
    await manual_clock.advance(1.0)
    _topic, change = sub.get_nowait()
    assert change.new.server.port == 9100
    task.cancel()
