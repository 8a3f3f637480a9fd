"""Shared base for catalog rows: every row says where its numbers came from and when."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Row(BaseModel):
    """A catalog row. Unknown keys are errors so a typo in a data file fails the catalog tests."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=8, description="URL the numbers were read from.")
    read: dt.date = Field(description="When the source was read.")
