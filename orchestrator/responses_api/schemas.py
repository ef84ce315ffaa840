"""The Responses API's request bodies as pydantic models: types and ranges checked here (a 400 in OpenAI's shape
otherwise); what the fields mean is the service's to check. Fields OpenAI accepts that change nothing here
(prompt_cache_key, safety_identifier, service_tier, stream_options, ...) are accepted and ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Metadata = Annotated[dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]],
                     Field(max_length=16)]
Item = dict[str, Any]


class ResponseCreate(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, max_length=256)]
    input: str | list[Item] = Field(default_factory=list)
    instructions: str | None = None
    tools: list[Item] = Field(default_factory=list, max_length=128)
    tool_choice: str | Item | None = None
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    conversation: str | Item | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    include: list[str] | None = None
    max_output_tokens: int | None = Field(None, ge=16)
    max_tool_calls: int | None = Field(None, ge=1)
    metadata: Metadata | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    text: Item | None = None
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None
    reasoning: Item | None = None

    @field_validator("conversation")
    @classmethod
    def _conversation_id(cls, value: str | Item | None) -> str | None:
        """`"conv_…"` or `{"id": "conv_…"}`, kept as the id."""
        if isinstance(value, dict):
            if not isinstance(value.get("id"), str):
                raise ValueError("conversation must be an id or an object with an id")
            return str(value["id"])
        return value

    def request(self) -> dict[str, Any]:
        """The fields the service reads, as given (unset ones left out, so defaults apply)."""
        return self.model_dump(exclude_unset=True, exclude={"stream"}) | {"model": self.model}


class ConversationCreate(BaseModel):
    items: list[Item] | None = None
    metadata: Metadata | None = None


class ConversationUpdate(BaseModel):
    metadata: Metadata | None


class ItemsCreate(BaseModel):
    items: list[Item]
