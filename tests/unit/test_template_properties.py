"""TemplateRenderer: properties over generated bodies, checked against a reference built by concatenation."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronjob.domain.errors import ValidationError
from cronjob.domain.template import TemplateRenderer

renderer = TemplateRenderer()

# -- strategies ------------------------------------------------------------------------------

#: Text with no brace at all: it can never form or break a placeholder.
plain_text = st.text(st.characters(exclude_characters="{}", codec="utf-8"), max_size=12)

#: Brace text that is *not* a placeholder on its own nor next to one (``{{1a}}``, a lone ``{{``, ...).
NEAR_MISSES = ["{", "}", "{}", "{{", "}}", "{{}}", "{{ }}", "{1}", "{{-1}}", "{{1a}}", "{{ a b }}",
               "{{{", "}}}", "{{é}}", "{ {1} }", "{{1.5}}"]

#: A fragment between two placeholders: plain text, optionally with one near miss inside.
#: (One near miss at most: two could pair up into ``{{`` + ``x`` + ``}}``, a real placeholder.)
fragments = st.one_of(
    plain_text,
    st.tuples(plain_text, st.sampled_from(NEAR_MISSES), plain_text).map("".join),
)

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)

#: Values that look like placeholders themselves: they must come out verbatim, never expanded.
tricky_values = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["{{1}}", "{{2}}", "{{ 1 }}", "{{name}}", "{{nome}}", "{{", "}}", "$1", "\\1", "\\g<0>"]),
    st.tuples(st.text(max_size=4), st.sampled_from(["{{1}}", "{{name}}"]), st.text(max_size=4)).map("".join),
)
plain_values = plain_text


@dataclass(frozen=True)
class Case:
    body: str
    params: list[str]
    named: dict[str, str]
    order: list[str]  # the placeholder keys in the body, in order, with repeats
    expected: str  # the reference rendering, by concatenation


def _spelling(key: str) -> st.SearchStrategy[str]:
    space = st.sampled_from(["", " ", "  ", "\t", "\n"])
    return st.tuples(space, space).map(lambda s: "{{" + s[0] + key + s[1] + "}}")


@st.composite
def cases(draw: st.DrawFn, fragment: st.SearchStrategy[str] = plain_text,
          values: st.SearchStrategy[str] = plain_values) -> Case:
    n = draw(st.integers(0, 6))
    names = draw(st.lists(identifiers, max_size=3, unique=True))
    keys = [str(i) for i in range(1, n + 1)] + names
    repeats = draw(st.lists(st.sampled_from(keys), max_size=4)) if keys else []
    order = list(draw(st.permutations(keys + repeats)))
    params = draw(st.lists(values, min_size=n, max_size=n))
    named = {name: draw(values) for name in names}

    body_parts: list[str] = []
    expected_parts: list[str] = []
    for key in order:
        text = draw(fragment)
        body_parts += [text, draw(_spelling(key))]
        expected_parts += [text, params[int(key) - 1] if key.isdigit() else named[key]]
    tail = draw(fragment)
    body_parts.append(tail)
    expected_parts.append(tail)
    return Case("".join(body_parts), params, named, order, "".join(expected_parts))


# -- properties ------------------------------------------------------------------------------


@given(cases())
def test_rendering_leaves_no_placeholder_when_params_fit(case: Case) -> None:
    renderer.validate(case.body, case.params, case.named)
    rendered = renderer.render(case.body, case.params, case.named)
    assert renderer.placeholders(rendered) == []
    assert "{{" not in rendered and "}}" not in rendered


@given(cases(fragment=fragments, values=tricky_values))
def test_rendering_equals_the_reference_concatenation(case: Case) -> None:
    """Also: values, even those that look like placeholders, are inserted verbatim and never expanded again."""
    assert renderer.render(case.body, case.params, case.named) == case.expected


@given(cases(fragment=fragments))
def test_placeholders_lists_each_key_once_in_order_of_first_appearance(case: Case) -> None:
    assert renderer.placeholders(case.body) == list(dict.fromkeys(case.order))


@given(cases(), st.data())
def test_a_missing_positional_param_is_refused(case: Case, data: st.DataObject) -> None:
    if not case.params:
        case = Case("{{1}}" + case.body, [], case.named, ["1", *case.order], "")
        fewer: list[str] = []
    else:
        keep = data.draw(st.integers(0, len(case.params) - 1))
        fewer = case.params[:keep]
    with pytest.raises(ValidationError) as raised:
        renderer.validate(case.body, fewer, case.named)
    assert raised.value.field == "params"
    with pytest.raises(ValidationError):
        renderer.render(case.body, fewer, case.named)


@given(cases(), st.lists(plain_values, min_size=1, max_size=3))
def test_surplus_positional_params_are_refused(case: Case, extra: list[str]) -> None:
    with pytest.raises(ValidationError) as raised:
        renderer.validate(case.body, case.params + extra, case.named)
    assert raised.value.field == "params"


@given(cases(), st.data())
def test_a_missing_named_param_is_refused(case: Case, data: st.DataObject) -> None:
    names = sorted(case.named)
    if not names:
        case = Case("{{who}}" + case.body, case.params, {}, ["who", *case.order], "")
        named: dict[str, str] = {}
    else:
        dropped = data.draw(st.sampled_from(names))
        named = {k: v for k, v in case.named.items() if k != dropped}
    with pytest.raises(ValidationError) as raised:
        renderer.validate(case.body, case.params, named)
    assert raised.value.field == "params"


@given(cases(), identifiers, plain_values)
def test_a_surplus_named_param_is_refused(case: Case, name: str, value: str) -> None:
    if name in case.named:
        name = name + "_extra"
    with pytest.raises(ValidationError) as raised:
        renderer.validate(case.body, case.params, {**case.named, name: value})
    assert raised.value.field == "params"


@given(st.sets(st.integers(1, 9), min_size=1, max_size=6), plain_text)
def test_gaps_in_the_numbering_are_refused(numbers: set[int], text: str) -> None:
    top = max(numbers)
    body = text.join("{{%d}}" % n for n in sorted(numbers))
    if numbers == set(range(1, top + 1)):
        renderer.validate(body, ["x"] * top)  # contiguous: fine
        return
    # Whatever the number of params, a gap is refused (even one param per highest number).
    for count in {len(numbers), top}:
        with pytest.raises(ValidationError) as raised:
            renderer.validate(body, ["x"] * count)
        assert raised.value.field == "body"


@settings(max_examples=50)
@given(cases())
def test_numbering_from_zero_is_refused(case: Case) -> None:
    with pytest.raises(ValidationError):
        renderer.validate("{{0}}" + case.body, ["x", *case.params], case.named)


# -- examples --------------------------------------------------------------------------------


def test_seed_example() -> None:
    body = "Olá, {{1}}! Seu pedido será entregue em {{2}}."
    assert renderer.render(body, ["Leandro", "2 dias úteis"]) == (
        "Olá, Leandro! Seu pedido será entregue em 2 dias úteis."
    )


def test_seed_body_refuses_one_param_and_three_params() -> None:
    body = "Olá, {{1}}! Seu pedido será entregue em {{2}}."
    for params in (["Leandro"], ["Leandro", "2 dias úteis", "extra"], []):
        with pytest.raises(ValidationError) as raised:
            renderer.validate(body, params)
        assert raised.value.field == "params"


def test_a_value_that_looks_like_a_placeholder_is_not_expanded() -> None:
    assert renderer.render("{{1}} e {{2}}", ["{{2}}", "x"]) == "{{2}} e x"
    assert renderer.render("Oi {{name}}", named={"name": "{{name}}"}) == "Oi {{name}}"


def test_spaces_inside_braces_and_repeats() -> None:
    assert renderer.render("{{ 1 }}-{{1}}-{{\tnome\n}}", ["a"], {"nome": "b"}) == "a-a-b"


def test_positional_and_named_mixed() -> None:
    body = "{{saudacao}}, {{1}}! Código {{2}}."
    assert renderer.render(body, ["Ana", "X9"], {"saudacao": "Bom dia"}) == "Bom dia, Ana! Código X9."


def test_a_body_without_placeholders_takes_no_params() -> None:
    assert renderer.render("Sem variáveis {1} {{}}") == "Sem variáveis {1} {{}}"
    with pytest.raises(ValidationError) as raised:
        renderer.validate("Sem variáveis", ["x"])
    assert raised.value.field == "params"


def test_a_gap_names_the_body() -> None:
    with pytest.raises(ValidationError) as raised:
        renderer.validate("{{1}} {{3}}", ["a", "b", "c"])
    assert raised.value.field == "body"


def test_a_param_that_is_not_text_is_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        renderer.validate("{{1}}", [42])  # type: ignore[list-item]
    assert raised.value.field == "params.0"
