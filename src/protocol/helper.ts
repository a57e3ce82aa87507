/**
 * Methods the root helper serves to the daemon. The schemas only check
 * shapes; the helper's operations check every value against banger's own
 * names, ranges and paths before acting.
 *
 * @module
 */
import { z } from "zod";

const shortString = z.string().min(1).max(64);

export const BridgeEnsureParamsSchema = z.strictObject({
  name: shortString,
  address: shortString,
  prefix: z.number().int(),
});

export const TapCreateParamsSchema = z.strictObject({
  name: shortString,
  bridge: shortString,
  owner: z.number().int().nonnegative(),
});

export const TapDeleteParamsSchema = z.strictObject({ name: shortString });

export const HelperPingResultSchema = z.strictObject({
  version: z.string(),
  pid: z.number().int(),
  ownerUid: z.number().int(),
  peerUid: z.number().int(),
});

/** NAT for one guest: its tap, its address (the /32) and the bridge. */
export const NatUpParamsSchema = z.strictObject({
  tap: shortString,
  address: shortString,
  bridge: shortString,
});

export const NatDownParamsSchema = z.strictObject({ tap: shortString });

export const NatDownResultSchema = z.strictObject({
  tap: z.string(),
  removed: z.number().int(),
});

/** Route `~vm` to the daemon's DNS port (on 127.0.0.1) via the bridge. */
export const ResolverRouteParamsSchema = z.strictObject({
  bridge: shortString,
  port: z.number().int(),
});

export const ResolverRouteResultSchema = z.strictObject({
  applied: z.boolean(),
  commands: z.array(z.array(z.string())),
});

export const TapPoolStatusResultSchema = z.strictObject({
  size: z.number().int(),
  ready: z.array(z.string()),
});
