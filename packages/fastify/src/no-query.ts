/**
 * The query-string schema of every API route that takes no query parameters: any parameter is
 * refused with 400 (`querystring has unknown field "…"`) rather than ignored, so a client that
 * believes `?user=` or `?token=` does something learns at once that it does not (identity
 * comes only from the token). Needs `AJV_OPTIONS` (error-handler.ts), which keeps Ajv from dropping
 * unknown fields instead of refusing them.
 */
export const NO_QUERY = {
  type: "object",
  properties: {},
  additionalProperties: false,
} as const;
