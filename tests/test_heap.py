"""A serving process freezes what startup built, so full collections stop walking it
(issue 11: 80 ms pauses, several a second, under emit load); an app made by a test
freezes nothing unless asked."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tocsin.app import create_app
from tocsin.heap import freeze_startup_heap
from tocsin.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezing_puts_every_live_object_out_of_the_collectors_reach(unfrozen: None) -> None:
    kept = [object()]  # a container: tracked by the collector
    assert any(o is kept for o in gc.get_objects())
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())
    made_later = [object()]
    assert any(o is made_later for o in gc.get_objects())


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_app_freezes_its_startup_heap_only_when_asked(
    unfrozen: None, settings: Settings, freeze: bool
) -> None:
    app = create_app(settings, run_worker=False, freeze_heap=freeze)
    async with app.router.lifespan_context(app):
        assert (gc.get_freeze_count() > 0) is freeze
