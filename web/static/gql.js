// The GraphQL client of the page: POST /graphql with the bearer token of this tab.

const KEY = "tocsin.token";

export const session = {
  get token() {
    return sessionStorage.getItem(KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

/** A refusal of the whole request (HTTP or GraphQL level), with the server's code. */
export class GraphQLFailure extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/** Runs an operation; resolves to its data, or rejects with a GraphQLFailure. */
export async function gql(query, variables = {}, token = session.token) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new GraphQLFailure("The server cannot be reached.", "NETWORK", 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    throw new GraphQLFailure(`The server answered HTTP ${response.status}.`, "HTTP", response.status);
  }
  const first = body && body.errors && body.errors[0];
  if (first) {
    const code = (first.extensions && first.extensions.code) || "ERROR";
    throw new GraphQLFailure(first.message, code, response.status);
  }
  return body.data;
}

/** What this server's schema offers of the parts added after the first contract. */
export async function probeFeatures() {
  const data = await gql(`{
    channel: __type(name: "Channel") { fields { name } }
    mutation: __type(name: "Mutation") { fields { name } }
    __schema { subscriptionType { fields { name } } }
  }`);
  const names = (type) => new Set(((type && type.fields) || []).map((f) => f.name));
  const subscription = data.__schema.subscriptionType;
  return {
    categories: names(data.channel).has("eventCategories"),
    smtpTest: names(data.mutation).has("testSmtpConnection"),
    liveEvents: names(subscription).has("events"),
  };
}
