// Options objects: unknown keys are errors (a misspelt `casual: true` must not silently
// give non-causal attention), and values are shown in messages as the caller wrote them.

/** A value as a message shows it: strings quoted, arrays and objects by kind. */
export function show(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return `[${value.map(show).join(', ')}]`;
  return (value as object).constructor?.name ?? 'object';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      const substitute = diagonal + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1);
      row[j] = Math.min(above + 1, row[j - 1] + 1, substitute);
      diagonal = above;
    }
  }
  return row[b.length];
}

/** The allowed key closest to `key`, if any is close enough to be a likely misspelling. */
function nearest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/**
 * Throws a TypeError naming the first own enumerable key of `options` that is not in
 * `allowed` (keys whose value is undefined count too), with the nearest valid key.
 * `where` names the object, e.g. 'options' or 'options.window'.
 */
export function checkKeys(options: object, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(options)) {
    if (allowed.includes(key)) continue;
    const guess = nearest(key, allowed);
    throw new TypeError(
      `qkv: ${where}: unknown option '${key}'` +
        (guess ? ` (did you mean '${guess}'?)` : '') +
        `; valid options: ${allowed.map((k) => `'${k}'`).join(', ')}`,
    );
  }
}

/**
 * An options argument: undefined gives {}, anything but a plain object is a TypeError, and
 * with `keys`, so is a key not among them (checkKeys).
 */
export function optionsObject<T extends object>(value: T | undefined, where: string, keys?: readonly string[]): T {
  if (value === undefined) return {} as T;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`qkv: ${where} must be an object, got ${show(value)}`);
  }
  if (keys) checkKeys(value, keys, where);
  return value;
}

/**
 * A number as the kernels use it: float32. Every backend gets the rounded value, so each
 * treats it the same way; a value that rounds to ±Infinity is out of range.
 */
export function float32Option(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !Number.isFinite(Math.fround(value))) {
    throw new RangeError(`qkv: ${name} must be a finite float32 number (|x| <= 3.4028234663852886e38), got ${show(value)}`);
  }
  return Math.fround(value);
}

/** A `threads` option: undefined gives 0 (the backend's default), else an integer in [1, 1024]. */
export function threadsOption(value: unknown, name: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > 1024) {
    throw new RangeError(`qkv: ${name} must be an integer in [1, 1024] (omit it for the default), got ${show(value)}`);
  }
  return value;
}
