"""GraphQL at /graphql (`[graphql]`)."""

from __future__ import annotations

from typing import Annotated

from scoreboard.settings.section import Section, key


class GraphqlSettings(Section, frozen=True):
    """GraphQL at /graphql: the same reads, the reportAction mutation and a live
    leaderboard subscription (graphql-transport-ws), under the same auth and limits as
    the REST API. A query over these caps is refused before anything runs."""

    enabled: Annotated[bool, key("Serve /graphql; false: it answers 404.")] = True
    max_depth: Annotated[int, key(
        "The deepest selection a query may make (introspection fields not counted).",
        ge=1, le=64)] = 8
    max_aliases: Annotated[int, key(
        "Aliases in one document: each costs a resolver run (and a rate-limit hit).",
        ge=0, le=1000)] = 15
    max_tokens: Annotated[int, key(
        "Tokens in one document; longer documents are refused while parsing.",
        ge=100, le=100_000)] = 2000
    max_body_bytes: Annotated[int, key("The largest request body (bytes).",
                                       ge=256, le=1024 * 1024)] = 16384
    max_users: Annotated[int, key("The most user ids one `users` query may ask about.",
                                  ge=1, le=1000)] = 100
    max_subscriptions: Annotated[int, key(
        "Operations one graphql-transport-ws socket may run at once.", ge=1, le=100)] = 5
