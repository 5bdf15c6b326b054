"""The OpenAI Agents SDK (openai-agents) with its default model, the Responses one, against an
OpenAI, a Claude and a Gemini model behind the gateway: a function tool called and answered, and a
typed final output (output_type)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from pydantic import BaseModel

from tests.doors.conftest import MASTER, MODELS


class Forecast(BaseModel):
    city: str
    days: int
    summary: str


@pytest.mark.parametrize("model", MODELS)
def test_agent_calls_a_tool_and_returns_its_output_type(
    gateway_url: str, model: str, upstreams: dict[str, Any], openai_upstream: Any
) -> None:
    set_tracing_disabled(True)  # the SDK would send traces to OpenAI
    calls: list[tuple[str, int]] = []

    @function_tool
    def get_weather(city: str, days: int) -> str:
        """The weather in a city for some days."""
        calls.append((city, days))
        return f"sunny in {city} for {days} days"

    async def run() -> Any:
        client = openai.AsyncOpenAI(base_url=gateway_url + "/v1", api_key=MASTER, max_retries=0)
        agent = Agent(
            name="forecaster",
            instructions="Use the tool, then answer.",
            tools=[get_weather],
            output_type=Forecast,
            model=OpenAIResponsesModel(model=model, openai_client=client),
        )
        return await Runner.run(agent, "Weather in Paris for 3 days?")

    result = asyncio.run(run())
    assert calls == [("Paris", 3)]
    assert isinstance(result.final_output, Forecast) and result.final_output.city == "Paris"
    kinds = [item.type for item in result.new_items if item.type != "reasoning_item"]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"] and kinds[-1] == "message_output_item"
