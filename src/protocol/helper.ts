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
