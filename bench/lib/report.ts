import { cpus, loadavg } from 'node:os';

/** Progress lines go to stderr, so stdout carries only the bench's one JSON line. */
export function logger(prefix: string): (line: string) => void {
  return (line) => process.stderr.write(`[${prefix}] ${line}\n`);
}

/** A positive integer setting from the environment, or the fallback. */
export function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
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
