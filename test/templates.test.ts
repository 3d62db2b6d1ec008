import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileCampaign, compileTemplate, TemplateError } from '../src/campaigns/template.ts';
import { databaseKinds } from './helpers/db.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const vars = (attributes: Record<string, unknown> = {}) => ({
  name: 'Ann <b>&',
  email: 'ann@example.test',
  attributes,
  unsubscribeUrl: 'https://mp.example/u/tok.en',
});

function compileError(source: string): TemplateError {
  try {
    compileTemplate('html', source, true);
  } catch (err) {
    if (err instanceof TemplateError) return err;
    throw err;
  }
  throw new Error(`compiled: ${source}`);
}

describe('templates written by users', () => {
  it('escape merge values in HTML and keep them raw in text and subject', () => {
    const c = compileCampaign({ subject: 'Hi {{name}}', html: '<p>{{name}} {{email}}</p>', text: 'Hi {{name}}' });
    expect(c.subject(vars())).toBe('Hi Ann <b>&');
    expect(c.html!(vars())).toBe('<p>Ann &lt;b&gt;&amp; ann@example.test</p>');
    expect(c.text!(vars())).toBe('Hi Ann <b>&');
  });

  it('render missing attributes, deep paths and odd values as nothing, never as an error', () => {
    const render = compileTemplate('html', '[{{attributes.city}}|{{attributes.a.b.c}}|{{nope}}|{{attributes.n}}|{{#if attributes.vip}}vip{{/if}}]', true);
    expect(render(vars())).toBe('[||||]');
    expect(render(vars({ city: 'Oslo', n: 0, vip: true }))).toBe('[Oslo|||0|vip]');
    expect(render({ ...vars(), attributes: null as never })).toBe('[||||]');
  });

  it('render constructor and prototype tricks as nothing', () => {
    const tricks = [
      '{{constructor}}',
      '{{constructor.name}}',
      '{{constructor.constructor}}',
      '{{__proto__}}',
      '{{attributes.constructor.constructor}}',
      '{{attributes.__proto__.constructor}}',
      '{{attributes.toString}}',
      '{{attributes.hasOwnProperty}}',
      '{{email.constructor.constructor}}',
      '{{#with attributes}}{{constructor.constructor}}{{/with}}',
      '{{lookup attributes "constructor"}}',
      '{{#with (lookup attributes "constructor")}}{{lookup this "constructor"}}{{/with}}',
      '{{#each attributes}}{{@key}}{{/each}}',
      '{{@root.constructor}}',
      '{{this.constructor.prototype}}',
    ];
    const render = compileTemplate('html', tricks.join('|'), true);
    const out = render(vars());
    expect(out).toBe(tricks.map(() => '').join('|'));
    // An attribute really named like a trick is just a value.
    expect(compileTemplate('text', '{{attributes.constructor}}', false)(vars({ constructor: 'x' }))).toBe('x');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuse syntax errors with their line and column', () => {
    const e = compileError('<p>Hello {{name}}</p>\n<p>{{#if attributes.vip}}VIP</p>');
    expect(e.message).toMatch(/^html: template error at line 2, column \d+: /);
    expect(e.line).toBe(2);
    expect(compileError('line one\n  line two {{name}').message).toMatch(/^html: template error at line 2, column 18: /);
    expect(compileError('{{#each attributes}}\n{{/if}}')).toMatchObject({ line: 1 });
  });

  it('refuse what only fails when sent: partials, decorators, unknown or logging helpers, wrong arity', () => {
    expect(compileError('a\n{{> footer}}').message).toBe('html: template error at line 2, column 1: partials ({{> name}}) are not available');
    expect(compileError('{{log "x"}}').message).toMatch(/the helper "log" is not available/);
    expect(compileError('{{helperMissing "x"}}').message).toMatch(/not available/);
    expect(compileError('x {{shout name}}').message).toMatch(/unknown helper shout/);
    expect(compileError('\n\n{{#if}}x{{/if}}').message).toBe('html: template error at line 3, column 1: "if" needs exactly 1 argument');
    expect(compileError('{{lookup attributes}}').message).toMatch(/"lookup" needs exactly 2 arguments/);
    expect(compileError('{{* decorate}}').message).toMatch(/decorators are not available/);
  });

  it('derive the text part from the HTML once, keeping merge tags, links and literal braces', () => {
    const html = [
      '<html><head><title>{{name}}</title><style>p { color: red }</style></head><body>',
      '<h1>Hello {{name}},</h1>',
      '<p>News for {{attributes.city}} &amp; friends: &#123;&#123;not a tag}}</p>',
      '{{#if attributes.vip}}<p>Thanks for being a VIP.</p>{{/if}}',
      '<p><a href="https://shop.example/?u={{email}}">Shop now</a> or <a href="{{unsubscribeUrl}}">unsubscribe</a></p>',
      '</body></html>',
    ].join('\n');
    const c = compileCampaign({ subject: 's', html, text: null });
    const text = c.text!(vars({ city: 'Oslo', vip: true }));
    expect(text).toContain('Hello Ann <b>&,');
    expect(text).toContain('News for Oslo & friends: {{not a tag}}');
    expect(text).toContain('Thanks for being a VIP.');
    expect(text).toContain('Shop now [https://shop.example/?u=ann@example.test]');
    expect(text).toMatch(/unsubscribe\s+\[https:\/\/mp\.example\/u\/tok\.en\]/);
    expect(text).not.toContain('color: red');
    expect(c.text!(vars())).not.toContain('VIP');
  });

  it('convert each rendered HTML when the derived text template would not compile', () => {
    // The converter drops <style>, and with it the opening of this block.
    const c = compileCampaign({ subject: 's', html: '<style>{{#if attributes.vip}}</style><p>Hi {{name}}</p>{{/if}}', text: null });
    expect(c.text!(vars({ vip: true }))).toBe('Hi Ann <b>&');
    expect(c.text!(vars())).toBe('');
  });
});

describe.each(databaseKinds)('templates through the API (%s)', (kind) => {
  let t: TestMailPilot;
  let key: string;
  let listId: number;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
    key = (await t.createUser()).apiKey;
    listId = (await must(t, key, 'POST', '/api/v1/lists', { name: 'l' })).id;
  });
  afterAll(() => t.close());

  const campaign = (body: Record<string, unknown>) =>
    t.api('POST', '/api/v1/campaigns', { key, body: { name: 'c', listIds: [listId], subject: 'Hi', text: 'x', ...body } });

  it('refuses a campaign whose template has a syntax error with 422 naming the field, line and column', async () => {
    const res = await campaign({ html: '<p>ok</p>\n<p>{{#each attributes}}</p>' });
    expect(res.status).toBe(422);
    expect(res.body.error).toEqual({ code: 'invalid_template', message: expect.stringMatching(/^html: template error at line 2, column \d+: /) });
    expect((await campaign({ subject: 'Hi {{name' })).body.error.message).toMatch(/^subject: template error at line 1, column \d+/);
    expect((await campaign({ text: 'a\nb\n{{> partial}}' })).body.error.message).toMatch(/^text: template error at line 3, column 1: partials/);
  });

  it('checks templates again when a campaign is changed', async () => {
    const created = await campaign({});
    expect(created.status).toBe(201);
    const bad = await t.api('PATCH', `/api/v1/campaigns/${created.body.id}`, { key, body: { html: '{{#if x}}' } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.message).toMatch(/^html: template error at line 1/);
    const emptied = await t.api('PATCH', `/api/v1/campaigns/${created.body.id}`, { key, body: { text: null } });
    expect(emptied).toMatchObject({ status: 422, body: { error: { message: 'html: give html, text or both' } } });
    const good = await t.api('PATCH', `/api/v1/campaigns/${created.body.id}`, { key, body: { html: '<p>{{name}}</p>', text: null, subject: 'New {{name}}' } });
    expect(good.status).toBe(200);
    expect(good.body).toMatchObject({ html: '<p>{{name}}</p>', text: null, subject: 'New {{name}}', status: 'draft' });
  });
});
