"""OpenAI content-part lists (`content: [{type: text, text: ...}]`), as DataDesigner sends
them: accepted by the message model, sent as given, and read by the test server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from pydantic import ValidationError

from helpsteer.llm import ChatRequest, LLMConfig, make_client
from helpsteer.llm.openai_backend import chat_body
from helpsteer.llm.testing import answer

PARTS = [{"type": "text", "text": "first line"}, {"type": "text", "text": "second"}]


def client_for(url: str, transport: str):
    config = LLMConfig(
        backend="openai", model="m", base_urls=[url], max_retries=0, extra={"transport": transport}
    )
    return make_client(config)


def test_content_parts_are_accepted_and_their_text_read():
    request = ChatRequest(
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": PARTS}]
    )
    assert request.messages[0].text == "be brief"
    assert request.messages[1].text == "first line\nsecond"


def test_an_image_part_goes_on_the_wire_without_unset_fields():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    request = ChatRequest(messages=[{"role": "user", "content": [PARTS[0], image]}])
    body = chat_body(request, "m", "json_schema")
    assert body["messages"] == [{"role": "user", "content": [PARTS[0], image]}]
    assert request.messages[0].text == "first line"


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "text"}],
        [{"type": "audio", "text": "x"}],
        [{"type": "text", "text": "x", "extra": 1}],
        ["plain string in a list"],
        None,
    ],
)
def test_malformed_content_parts_are_refused(content):
    with pytest.raises(ValidationError):
        ChatRequest(messages=[{"role": "user", "content": content}])


def test_parts_and_the_same_text_as_a_string_are_different_requests():
    text = ChatRequest(messages=[{"role": "user", "content": "first line"}])
    parts = ChatRequest(messages=[{"role": "user", "content": PARTS[:1]}])
    assert text.cache_key("openai", "m") != parts.cache_key("openai", "m")


@pytest.mark.parametrize("transport", ["aiohttp", "sdk"])
def test_the_server_answers_content_parts(server, transport):
    with client_for(server.url, transport) as client:
        done = client.complete(ChatRequest(messages=[{"role": "user", "content": PARTS}]))
    assert done.ok and done.texts == ["echo: first line\nsecond"]
    assert done.usage.prompt_tokens == 3
    (received,) = server.requests
    assert received.body["messages"] == [{"role": "user", "content": PARTS}]
    assert received.prompt == "first line\nsecond"


def test_the_test_answer_counts_words_of_every_part():
    body = {"messages": [{"role": "user", "content": PARTS}, {"role": "user", "content": "a b"}]}
    assert answer(body)["usage"]["prompt_tokens"] == 5


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"messages": ["hi"]}'])
def test_the_server_refuses_a_body_it_cannot_read_with_a_400(server, raw):
    post = urllib.request.Request(
        f"{server.url}/chat/completions", data=raw, headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=10)
    assert refused.value.code == 400
    assert "not a chat completion request" in json.loads(refused.value.read())["error"]["message"]
    # the server is still there for a good request
    with client_for(server.url, "aiohttp") as client:
        assert client.complete(ChatRequest(messages=[{"role": "user", "content": "q"}])).ok


def test_text_parts_go_as_one_string_to_a_server_that_cannot_read_lists():
    # llama-cpp-python's chatml format drops a message whose content is a list
    from helpsteer.llm.local import LocalClient

    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    request = ChatRequest(
        messages=[{"role": "user", "content": PARTS}, {"role": "user", "content": [image]}]
    )
    flat = chat_body(request, "m", "json_schema", text_parts_as_string=True)
    assert flat["messages"] == [
        {"role": "user", "content": "first line\nsecond"},
        {"role": "user", "content": [image]},
    ]
    assert chat_body(request, "m", "json_schema")["messages"][0]["content"] == PARTS
    assert LocalClient.text_parts_as_string
