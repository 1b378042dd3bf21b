"""GraphQL at /graphql (Strawberry on the HTTP app): the REST reads and the action
report as queries and a mutation, and the live top as a graphql-transport-ws
subscription. Types come from the reply Structs, reads from the same read model,
actions through the same writer path, errors from the same table."""
