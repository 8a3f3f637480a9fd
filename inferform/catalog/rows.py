"""Shared base for catalog rows: every row says where its numbers came from and when."""

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field


class Row(BaseModel):
    """A catalog row. Unknown keys are errors so a typo in a data file fails the catalog tests."""

    # defer_build: rows usually come validated from catalog/files.py's cache; the validator is built on first use
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    source: str = Field(min_length=8, description="URL the numbers were read from.")
    read: dt.date = Field(description="When the source was read.")
