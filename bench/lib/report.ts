import { cpus, loadavg } from 'node:os';

/** Progress lines go to stderr, so stdout carries only the bench's one JSON line. */
export function logger(prefix: string): (line: string) => void {
  return (line) => process.stderr.write(`[${prefix}] ${line}\n`);
}

/** An integer setting of at least `min` (1) from the environment, or the fallback. */
export function intEnv(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer of at least ${min}, got "${raw}"`);
  return n;
}

/** The machine a result came from; the load average says whether other work moved the figures. */
export function machine(loadAtStart: number) {
  return { cpus: cpus().length, cpuModel: cpus()[0]?.model ?? null, loadAvg1: { start: loadAtStart, end: loadavg()[0]! }, node: process.version };
}

/** The benchmark's result: the one line on stdout. */
export function printResult(result: object): void {
  process.stdout.write(JSON.stringify(result) + '\n');
}
