/**
 * VM names: DNS labels (so `<name>.vm` resolves), generated when not given.
 *
 * @module
 */

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Checks that `name` is a DNS label: 1–63 characters of `a-z`, `0-9` and
 * `-`, not starting or ending with `-`. Upper case is refused rather than
 * folded, so the name a user typed is the name they get.
 *
 * Throws a `RangeError` that names the input and what is wrong.
 */
export function validateVmName(name: string): string {
  if (LABEL.test(name)) return name;
  let why = "must be 1-63 characters of a-z, 0-9 and -";
  if (name.length === 0) why = "must not be empty";
  else if (name.length > 63) why = `is ${name.length} characters, at most 63`;
  else if (/[A-Z]/.test(name)) why = "must be lower case";
  else if (name.startsWith("-") || name.endsWith("-")) {
    why = "must not start or end with -";
  }
  return invalid(name, why);
}

function invalid(name: string, why: string): never {
  throw new RangeError(`Invalid VM name "${name}": ${why}`);
}

const ADJECTIVES = [
  "amber",
  "brave",
  "calm",
  "clever",
  "crisp",
  "dapper",
  "eager",
  "fancy",
  "gentle",
  "happy",
  "jolly",
  "keen",
  "lively",
  "lucky",
  "mellow",
  "merry",
  "nimble",
  "plucky",
  "proud",
  "quick",
  "quiet",
  "rapid",
  "shiny",
  "snappy",
  "spry",
  "steady",
  "sunny",
  "swift",
  "tidy",
  "vivid",
  "witty",
  "zesty",
];
const NOUNS = [
  "badger",
  "beaver",
  "bison",
  "crane",
  "dingo",
  "falcon",
  "ferret",
  "gecko",
  "heron",
  "ibis",
  "koala",
  "lemur",
  "lynx",
  "marten",
  "mole",
  "newt",
  "ocelot",
  "otter",
  "panda",
  "puffin",
  "quokka",
  "raven",
  "robin",
  "seal",
  "stoat",
  "tapir",
  "tern",
  "toad",
  "viper",
  "walrus",
  "wombat",
  "yak",
];

/**
 * Returns an adjective-noun name not in `taken`, with a numeric suffix when
 * the random picks keep colliding.
 */
export function generateVmName(
  taken: ReadonlySet<string>,
  random: () => number = Math.random,
): string {
  const pick = (list: string[]) => list[Math.floor(random() * list.length)]!;
  for (let attempt = 0; attempt < 64; attempt++) {
    const name = `${pick(ADJECTIVES)}-${pick(NOUNS)}`;
    if (!taken.has(name)) return name;
  }
  for (let n = 2;; n++) {
    const name = `${pick(ADJECTIVES)}-${pick(NOUNS)}-${n}`;
    if (!taken.has(name)) return name;
  }
}
