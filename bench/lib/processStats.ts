import { readFileSync } from 'node:fs';

/** Peak resident memory of a live process so far (VmHWM: the kernel keeps the maximum, no sampling needed), in MiB. */
export function peakRssMb(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!kb) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Math.round(Number(kb) / 1024);
}

/** CPU time (user + system) a process has used, in seconds: its share of the work, whatever else runs. */
export function cpuSeconds(pid: number): number {
  // Fields 14 and 15 of /proc/PID/stat, after the command name in parentheses, in clock ticks.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
