"""Key rotation: re-encrypt every stored secret with the newest key."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import col

from tocsin.storage.database import Database
from tocsin.storage.secretbox import SecretBox
from tocsin.storage.tables import ChannelRow, MetaRow


async def rotate_secrets(db: Database, box: SecretBox) -> int:
    """Re-encrypt in one transaction; all or nothing. Answers how many channels changed."""
    async with db.write() as session:
        channels = (
            await session.scalars(
                select(ChannelRow)
                .where(col(ChannelRow.secrets_ciphertext).is_not(None))
                .order_by(col(ChannelRow.id))
                # a save committed meanwhile would otherwise be overwritten by its old secrets
                .with_for_update()
            )
        ).all()
        for channel in channels:
            assert channel.secrets_ciphertext is not None
            channel.secrets_ciphertext = box.rotate(channel.secrets_ciphertext)
        check = await session.get(MetaRow, "key_check", with_for_update=True)
        if check is not None:
            check.value = box.rotate(check.value)
        return len(channels)
