"""The tokens file: digests only, roles checked, every malformed entry refused with its place."""

from __future__ import annotations

import pytest

from modelconfig.tokens import ROLE_NAMES, digest_of, new_token
from modelconfigd.domain.access import Principal, Role
from modelconfigd.entrypoints.tokens import ROLES, TokensFileError, load_tokens


def write(tmp_path, text: str) -> str:
    path = tmp_path / "tokens.toml"
    path.write_text(text)
    return str(path)


def test_a_token_finds_its_caller_by_digest_and_nothing_else_does(tmp_path):
    token, digest = new_token()
    tokens = load_tokens(write(tmp_path, f"""
[[tokens]]
name = "checkout-service"
role = "reader"
sha256 = "{digest}"

[[tokens]]
name = "billing"
role = "writer"
common_name = "billing.internal"
"""))
    assert tokens.by_token(token) == Principal("checkout-service", Role.READER)
    assert tokens.by_token(token + "x") is None
    assert tokens.by_token(digest) is None  # the digest is not a token
    assert tokens.by_common_name("billing.internal") == Principal("billing", Role.WRITER)
    assert tokens.by_common_name("checkout-service") is None
    assert digest_of(token).hex() == digest and token.startswith("mct_")


def test_new_tokens_are_random():
    assert len({new_token()[0] for _ in range(100)}) == 100


def test_the_client_names_the_roles_the_daemon_knows():
    """modelconfigctl offers the client's names: they must be the daemon's roles, in order."""
    assert tuple(ROLES) == ROLE_NAMES


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('name = "a"\nrole = "root"\nsha256 = "' + "0" * 64 + '"', "role must be one of"),
        ('name = "a"\nrole = "reader"\nsha256 = "xyz"', "64 lower-case hex"),
        ('name = "a"\nrole = "reader"', "exactly one of sha256 and common_name"),
        ('name = ""\nrole = "reader"\nsha256 = "' + "0" * 64 + '"', "name must be"),
        ('name = "a"\nrole = "reader"\ntoken = "plain"', "unknown key.s. token"),
    ],
)
def test_a_malformed_entry_is_refused_with_its_place(tmp_path, entry, message):
    with pytest.raises(TokensFileError, match=message) as err:
        load_tokens(write(tmp_path, f"[[tokens]]\n{entry}\n"))
    assert "entry 1" in str(err.value)


def test_duplicates_unreadable_and_non_toml_files_are_refused(tmp_path):
    digest = "0" * 64
    twice = f'[[tokens]]\nname = "a"\nrole = "reader"\nsha256 = "{digest}"\n' * 2
    with pytest.raises(TokensFileError, match="same name"):
        load_tokens(write(tmp_path, twice))
    with pytest.raises(TokensFileError, match="not TOML"):
        load_tokens(write(tmp_path, "[[tokens]\n"))
    with pytest.raises(TokensFileError, match="cannot read"):
        load_tokens(str(tmp_path / "missing.toml"))
