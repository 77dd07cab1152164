/**
 * What a route says about itself in the OpenAPI document (`config: { docs }` on the route,
 * read by `openapi.ts` when `OPENAPI_DOCS` is on): its tag, summary, responses and whether it needs a
 * token. Kept out of the route's runtime `schema`: a `response` schema there would make
 * Fastify re-serialize (and strip) every answer. Also the schemas several routes' docs share.
 */

type Schema = Record<string, unknown>;

export interface RouteDoc {
  readonly tag: "auth" | "streams" | "input" | "presence" | "jobs" | "operations";
  readonly summary: string;
  readonly description?: string;
  /** Needs a token (bearer or session cookie). Default true. */
  readonly auth?: boolean;
  /** Status → description, or a full response object. */
  readonly responses: Readonly<Record<number, string | Schema>>;
  /** Params schema for routes that do not validate theirs. */
  readonly params?: Schema;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route's entry in the OpenAPI document; a route under `/api/` without one shows as undocumented. */
    docs?: RouteDoc;
  }
}

/** `{ code, message }`, the body of every refusal (docs/errors.md); a shared schema. */
export const ERROR_ID = "ErrorBody";
export const ERROR: Schema = {
  type: "object",
  required: ["code", "message"],
  properties: {
    code: {
      type: "string",
      description: "Stable error code (`RT_ERR_…`)",
      example: "RT_ERR_BAD_CHANNEL",
    },
    message: { type: "string" },
  },
};

export const USER: Schema = {
  type: "object",
  required: ["id", "name"],
  properties: { id: { type: "string", example: "u_4ZkP0q1xYb2m" }, name: { type: "string" } },
};

/** A JSON response: its description and schema. */
export function json(description: string, schema: Schema): Schema {
  return { description, content: { "application/json": { schema } } };
}
