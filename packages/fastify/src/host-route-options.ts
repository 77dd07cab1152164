/** Route options of the host's own kind (`config` for its hooks, say) merged into a route's. */
export interface HostRouteOptions {
  readonly config?: Record<string, unknown>;
}
