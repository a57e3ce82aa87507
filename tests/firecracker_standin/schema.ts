/**
 * Firecracker's API contract (its published schema, see contract.ts) turned
 * into request validators with a real JSON-schema validator (ajv).
 *
 * Firecracker deserializes every request body with serde's
 * `deny_unknown_fields`, which the Swagger file does not say; so every
 * object definition that lists its properties is closed here
 * (`additionalProperties: false`), and an unknown field is refused just as
 * Firecracker refuses it.
 *
 * Used by the contract tests and by the stand-in `firecracker`.
 *
 * @module
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { type Contract, loadContract, type Phase } from "./contract.ts";

/** A route of the API with the definition its body must match. */
export interface Route {
  method: string;
  /** The template, e.g. `/drives/{drive_id}`. */
  template: string;
  pattern: RegExp;
  /** Path parameter names in order. */
  params: string[];
  /** Definition name of the body, if the route takes one. */
  bodyDefinition: string | undefined;
  bodyRequired: boolean;
  /** From the schema's summary: "Pre-boot only." / "Post-boot only.". */
  phase: Phase;
}

/** The outcome of validating one request. */
export type Validation =
  | { ok: true; route: Route; params: Record<string, string> }
  | { ok: false; status: number; message: string };

/** Request validators for one schema document. */
export class ApiSchema {
  readonly version: string;
  readonly routes: Route[];
  readonly #validators = new Map<string, ValidateFunction>();

  constructor(contract: Contract) {
    this.version = contract.version;
    const definitions = structuredClone(contract.definitions);
    for (const definition of Object.values(definitions)) {
      closeObjects(definition);
    }
    // Swagger annotations (readOnly, format…) are not all ajv keywords.
    const ajv = new Ajv({ strict: false, logger: false });
    ajv.addSchema({ $id: "firecracker", definitions });
    for (const name of Object.keys(definitions)) {
      this.#validators.set(
        name,
        ajv.getSchema(`firecracker#/definitions/${name}`)!,
      );
    }
    this.routes = contract.routes.map((r) => ({
      method: r.method,
      template: r.template,
      pattern: new RegExp(`^${r.template.replace(/\{\w+\}/g, "([^/]+)")}$`),
      params: [...r.template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!),
      bodyDefinition: r.body ?? undefined,
      bodyRequired: r.bodyRequired,
      phase: r.phase,
    }));
  }

  /** Loads the committed contract (see contract.ts). */
  static load(): ApiSchema {
    return new ApiSchema(loadContract());
  }

  /** Checks `body` against the definition called `name`. */
  validateDefinition(name: string, body: unknown): string | undefined {
    const validate = this.#validators.get(name);
    if (!validate) return `no definition "${name}" in the schema`;
    return validate(body) ? undefined : describe(validate.errors ?? []);
  }

  /**
   * Checks a request: a known method and path, and a body that matches
   * the route's definition (unknown fields refused). Path parameters that
   * repeat a body field (`drive_id`, `iface_id`) must agree with it.
   */
  validateRequest(method: string, path: string, body: unknown): Validation {
    const candidates = this.routes.filter((r) => r.pattern.test(path));
    const route = candidates.find((r) => r.method === method);
    if (!route) {
      return {
        ok: false,
        // Firecracker answers an unknown path and a known path with the
        // wrong method alike: 400, "Invalid request method and/or path".
        status: 400,
        message: `Invalid request method and/or path: ${method} ${path}.`,
      };
    }
    const match = path.match(route.pattern)!;
    const params = Object.fromEntries(
      route.params.map((name, i) => [name, decodeURIComponent(match[i + 1]!)]),
    );
    if (route.bodyDefinition) {
      if (body === undefined) {
        if (route.bodyRequired) {
          return { ok: false, status: 400, message: "Empty request body." };
        }
      } else {
        const problem = this.validateDefinition(route.bodyDefinition, body);
        if (problem) {
          return {
            ok: false,
            status: 400,
            message:
              `An error occurred when deserializing the json body of a request: ${problem}.`,
          };
        }
      }
    }
    for (const [name, value] of Object.entries(params)) {
      const field = (body as Record<string, unknown> | undefined)?.[name];
      if (field !== undefined && field !== value) {
        return {
          ok: false,
          status: 400,
          message: "The id from the path does not match the id from the body!",
        };
      }
    }
    return { ok: true, route, params };
  }
}

/** Adds `additionalProperties: false` to every object listing properties. */
function closeObjects(schema: unknown): void {
  if (schema === null || typeof schema !== "object") return;
  const node = schema as Record<string, unknown>;
  if (
    node.properties && typeof node.properties === "object" &&
    node.additionalProperties === undefined
  ) {
    node.additionalProperties = false;
  }
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) value.forEach(closeObjects);
    else closeObjects(value);
  }
}

function describe(errors: ErrorObject[]): string {
  const e = errors[0];
  if (!e) return "invalid body";
  const where = e.instancePath || "body";
  if (e.keyword === "additionalProperties") {
    return `unknown field "${
      (e.params as { additionalProperty: string }).additionalProperty
    }" in ${where}`;
  }
  return `${where} ${e.message ?? "is invalid"}`;
}
