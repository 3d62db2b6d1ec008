import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { ensurePromtool } from './helpers/promtool.ts';

const OPS = fileURLToPath(new URL('../ops/', import.meta.url));
const ALERTS = `${OPS}prometheus/alerts.yml`;
const ALERT_TESTS = `${OPS}prometheus/alerts.test.yml`;
const DASHBOARD = `${OPS}grafana/mailpilot.json`;
const promtool = ensurePromtool();

/** Every PromQL expression of the alert rules and of the dashboard's panels. */
function expressions(): { where: string; expr: string }[] {
  const rules = parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  return [
    ...rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }))),
    ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr }))),
  ];
}

describe.skipIf(!promtool)('alert rules under promtool (installed from Debian\'s prometheus package when missing)', () => {
  it('pass promtool check rules', () => {
    const out = execFileSync(promtool!, ['check', 'rules', ALERTS], { encoding: 'utf8' });
    expect(out).toMatch(/SUCCESS: 7 rules found/);
  });

  it('pass their unit tests (promtool test rules): account disabled, no worker holding leases, bounce rate', () => {
    const out = execFileSync(promtool!, ['test', 'rules', ALERT_TESTS], { encoding: 'utf8' });
    expect(out).toMatch(/SUCCESS/);
  });
});

describe.each(databaseKinds)('the alert rules and the dashboard use only series MailPilot exports (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it('names in every expression a metric that /metrics declares', async () => {
    const res = await fetch(`${t.url}/metrics`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    const declared = new Map([...(await res.text()).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const exported = (name: string) => {
      const histogram = /^(.*)_(bucket|count|sum)$/.exec(name);
      return declared.has(name) || (histogram !== null && declared.get(histogram[1]!) === 'histogram');
    };
    const all = expressions();
    expect(all.length).toBeGreaterThan(15);
    const unknown: string[] = [];
    for (const { where, expr } of all) {
      const names = expr.match(/\bmailpilot_\w+/g) ?? [];
      expect(names.length, where).toBeGreaterThan(0);
      for (const name of names) if (!exported(name)) unknown.push(`${where}: ${name}`);
    }
    expect(unknown).toEqual([]);
  });
});
