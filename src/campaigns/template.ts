import Handlebars from 'handlebars';
import { AppError } from '../errors.ts';
import { htmlToText, textTemplateFromHtml } from './textFromHtml.ts';

/** What a template can refer to: {{name}}, {{email}}, {{attributes.X}}, {{unsubscribeUrl}}. */
export interface MergeVars {
  name: string;
  email: string;
  attributes: Record<string, unknown>;
  unsubscribeUrl: string;
}

export type Render = (vars: MergeVars) => string;

export class TemplateError extends Error {
  constructor(
    readonly field: string,
    /** 1-based, when known. */
    readonly line: number | undefined,
    readonly column: number | undefined,
    detail: string,
  ) {
    const where = line === undefined ? '' : ` at line ${line}${column === undefined ? '' : `, column ${column}`}`;
    super(`${field}: template error${where}: ${detail}`);
  }
}

/**
 * Users' templates run in a sandbox: an instance of Handlebars of its own (no helpers anyone else
 * registered), the built-in helpers only (knownHelpersOnly; `log` refused, it writes to the server's
 * console), no partials or decorators, and no access to prototype properties or methods
 * (`{{constructor}}`, `{{__proto__}}`), denied silently rather than logged for every message.
 */
const handlebars = Handlebars.create();

/**
 * Each render of one field for one recipient may write at most this many characters (merge values
 * plus the template text its blocks repeat) and run at most this many blocks (`{{#each}}`
 * iterations, `{{#if}}`/`{{#with}}`/`{{#unless}}` bodies): three nested `{{#each}}` over 200
 * attributes would be 8 million iterations. Past either, that render fails (RenderLimitError) in
 * milliseconds, before its output can fill the heap or its loops hold the event loop. The largest
 * template (1,000,000 characters) fits twice over; a loop over all of a contact's attributes (200
 * at most) with a few blocks inside, or two nested loops over 100, fit.
 */
export const MAX_RENDER_CHARS = 2_000_000;
export const MAX_RENDER_BLOCKS = 10_000;

/** The helpers every output tag is rewritten to call (see OutputMeter), so each one is counted. */
const RAW_OUTPUT = 'mailpilotRaw';
const ESCAPED_OUTPUT = 'mailpilotEscaped';
const METERED_BLOCK_HELPERS = ['each', 'if', 'unless', 'with', 'blockHelperMissing'];

const COMPILE_OPTIONS = {
  knownHelpersOnly: true,
  knownHelpers: { [RAW_OUTPUT]: true, [ESCAPED_OUTPUT]: true },
  strict: false,
  preventIndent: true,
} as const;
const RUNTIME_OPTIONS: Handlebars.RuntimeOptions = { allowProtoPropertiesByDefault: false, allowProtoMethodsByDefault: false };
const EMPTY_VARS: MergeVars = { name: '', email: '', attributes: {}, unsubscribeUrl: '' };

/** The built-in helpers a template may call, with the number of arguments each needs. */
const HELPER_ARITY = new Map([
  ['if', 1],
  ['unless', 1],
  ['each', 1],
  ['with', 1],
  ['lookup', 2],
]);
const REFUSED_HELPERS = new Set(['log', 'helperMissing', 'blockHelperMissing', RAW_OUTPUT, ESCAPED_OUTPUT]);

/** A render that went past its budget: the field, and which limit. 422, since the preview and the test send answer it. */
export class RenderLimitError extends AppError {
  constructor(field: string, what: string) {
    super(422, 'render_limit', `${field}: rendering this template for this contact ${what}; simplify the template (nested {{#each}} blocks multiply) or the contact's data`);
  }
}

/** What one render has spent so far. Renders are synchronous, so one is active at a time. */
interface RenderBudget {
  field: string;
  /** Offset of each line of the template's source, to price a block by its length. */
  lineStarts: number[];
  chars: number;
  blocks: number;
}

let active: RenderBudget | undefined;

function spend(chars: number, blocks: number): void {
  const budget = active;
  if (!budget) return;
  budget.chars += chars;
  budget.blocks += blocks;
  if (budget.blocks > MAX_RENDER_BLOCKS) throw new RenderLimitError(budget.field, `runs more than ${MAX_RENDER_BLOCKS.toLocaleString('en')} blocks`);
  if (budget.chars > MAX_RENDER_CHARS) throw new RenderLimitError(budget.field, `writes more than ${MAX_RENDER_CHARS.toLocaleString('en')} characters`);
}

/** A block body writes at most its own source's length of template text each time it runs. */
function blockLength(loc: hbs.AST.SourceLocation | undefined): number {
  const lines = active?.lineStarts;
  if (!loc || !lines) return 1;
  const offset = (p: hbs.AST.Position) => (lines[p.line - 1] ?? 0) + p.column;
  return Math.max(1, offset(loc.end) - offset(loc.start));
}

type HelperOptions = Handlebars.HelperOptions & { loc?: hbs.AST.SourceLocation };
type Block = Handlebars.TemplateDelegate;
/** The inverse of a block without `{{else}}`: runs nothing, costs nothing. */
const noop = (handlebars.VM as unknown as { noop: Block }).noop;

// Each run of a block body (an iteration, an if's branch) is paid for before it runs. The options
// object is the block's own (a new one per call), so it is changed in place.
for (const name of METERED_BLOCK_HELPERS) {
  const helper = handlebars.helpers[name] as (...args: unknown[]) => unknown;
  handlebars.registerHelper(name, function (this: unknown, ...args: unknown[]) {
    const options = args[args.length - 1] as HelperOptions;
    const price = blockLength(options.loc);
    const { fn, inverse } = options;
    options.fn = (context, opts) => (spend(price, 1), fn(context, opts));
    if (inverse !== noop) options.inverse = (context, opts) => (spend(price, 1), inverse(context, opts));
    return helper.apply(this, args);
  });
}

const asText = (value: unknown) => (value === undefined || value === null ? '' : String(value));
handlebars.registerHelper(RAW_OUTPUT, (value: unknown) => {
  const text = asText(value);
  spend(text.length, 0);
  return text;
});
handlebars.registerHelper(ESCAPED_OUTPUT, (value: unknown) => {
  const html = handlebars.escapeExpression(asText(value));
  spend(html.length, 0);
  return new handlebars.SafeString(html);
});

/**
 * Rewrites every output tag (`{{x}}`, `{{{x}}}`, `{{lookup a "b"}}`) into a call of the output
 * helpers, which count what they write: a template repeating a long value thousands of times in
 * one block writes as much as a loop would.
 */
class OutputMeter extends Handlebars.Visitor {
  /** Handlebars' Visitor replaces each node with what its visit returns (not in its typings). */
  mutating = true;

  constructor(private readonly escapeHtml: boolean) {
    super();
  }

  override MustacheStatement(node: hbs.AST.MustacheStatement): hbs.AST.MustacheStatement {
    const value: hbs.AST.Expression =
      node.params.length === 0 && !node.hash
        ? node.path
        : ({ type: 'SubExpression', path: node.path, params: node.params, hash: node.hash, loc: node.loc } as hbs.AST.SubExpression);
    const helper = this.escapeHtml && node.escaped ? ESCAPED_OUTPUT : RAW_OUTPUT;
    const path = { type: 'PathExpression', data: false, depth: 0, parts: [helper], original: helper, loc: node.loc } as hbs.AST.PathExpression;
    return { ...node, path, params: [value], hash: undefined as unknown as hbs.AST.Hash };
  }
}

function lineStarts(source: string): number[] {
  const starts = [0];
  for (let i = source.indexOf('\n'); i !== -1; i = source.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

interface Problem {
  loc: hbs.AST.SourceLocation | undefined;
  message: string;
}

/**
 * Finds what would fail at send time rather than at parse time: partials and decorators (none
 * exist), refused helpers, and built-in helpers called with the wrong number of arguments.
 */
class SandboxCheck extends Handlebars.Visitor {
  problem: Problem | undefined;

  private refuse(node: hbs.AST.Node, message: string): void {
    this.problem ??= { loc: node.loc, message };
  }

  private checkCall(node: hbs.AST.MustacheStatement | hbs.AST.BlockStatement | hbs.AST.SubExpression): void {
    if (node.path.type !== 'PathExpression') return;
    const name = (node.path as hbs.AST.PathExpression).original;
    if (REFUSED_HELPERS.has(name)) return this.refuse(node, `the helper "${name}" is not available`);
    const arity = HELPER_ARITY.get(name);
    const isCall = node.type !== 'MustacheStatement' || node.params.length > 0 || node.hash !== undefined || arity !== undefined;
    if (arity !== undefined && isCall && node.params.length !== arity) {
      this.refuse(node, `"${name}" needs exactly ${arity} argument${arity === 1 ? '' : 's'}`);
    }
  }

  override MustacheStatement(node: hbs.AST.MustacheStatement): void {
    this.checkCall(node);
    super.MustacheStatement(node);
  }

  override BlockStatement(node: hbs.AST.BlockStatement): void {
    this.checkCall(node);
    super.BlockStatement(node);
  }

  override SubExpression(node: hbs.AST.SubExpression): void {
    this.checkCall(node);
    super.SubExpression(node);
  }

  override PartialStatement(node: hbs.AST.PartialStatement): void {
    this.refuse(node, 'partials ({{> name}}) are not available');
  }

  override PartialBlockStatement(node: hbs.AST.PartialBlockStatement): void {
    this.refuse(node, 'partials ({{#> name}}) are not available');
  }

  override Decorator(node: hbs.AST.Decorator): void {
    this.refuse(node, 'decorators are not available');
  }

  override DecoratorBlock(node: hbs.AST.DecoratorBlock): void {
    this.refuse(node, 'decorators are not available');
  }
}

type HandlebarsError = Error & { lineNumber?: number; column?: number };

/**
 * Where a template failed, 1-based. Handlebars' own errors carry it; the (jison) parser's syntax
 * errors do not, but its lexer keeps the location of the token it failed on.
 */
function errorLocation(err: HandlebarsError, fromLexer: boolean): { line?: number; column?: number } {
  if (err.lineNumber !== undefined) return { line: err.lineNumber, column: err.column === undefined ? undefined : err.column + 1 };
  const lexer = (handlebars as unknown as { Parser: { lexer?: { yylloc?: { first_line: number; first_column: number } } } }).Parser.lexer;
  const at = fromLexer ? lexer?.yylloc : undefined;
  return at ? { line: at.first_line, column: at.first_column + 1 } : {};
}

/** The error's own words, without the location it repeats (" - 1:3", "Parse error on line 1: ..."). */
const errorDetail = (err: Error) => (err.message.split('\n').at(-1) ?? err.message).replace(/ - \d+:\d+$/, '');

/**
 * Compiles a user's template once (per campaign, not per message). Syntax errors and anything the
 * sandbox refuses are reported now, with line and column, instead of failing at the first send.
 * Missing values render empty. Each render runs under a budget (MAX_RENDER_CHARS,
 * MAX_RENDER_BLOCKS) and throws RenderLimitError past it.
 */
export function compileTemplate(field: string, source: string, escapeHtml: boolean): Render {
  let ast: hbs.AST.Program;
  try {
    ast = handlebars.parse(source);
  } catch (err) {
    const at = errorLocation(err as HandlebarsError, true);
    throw new TemplateError(field, at.line, at.column, errorDetail(err as Error));
  }
  const check = new SandboxCheck();
  check.accept(ast);
  if (check.problem) {
    const { loc, message } = check.problem;
    throw new TemplateError(field, loc?.start.line, loc ? loc.start.column + 1 : undefined, message);
  }
  new OutputMeter(escapeHtml).accept(ast);
  const lines = lineStarts(source);
  try {
    const compiled = handlebars.compile(ast, { ...COMPILE_OPTIONS, noEscape: !escapeHtml });
    const render: Render = (vars) => {
      const outer = active;
      active = { field, lineStarts: lines, chars: 0, blocks: 0 };
      try {
        // The template's own text, written once.
        spend(source.length, 0);
        return compiled(vars, RUNTIME_OPTIONS);
      } finally {
        active = outer;
      }
    };
    render(EMPTY_VARS);
    return render;
  } catch (err) {
    const at = errorLocation(err as HandlebarsError, false);
    throw new TemplateError(field, at.line, at.column, errorDetail(err as Error));
  }
}

export interface CampaignContent {
  subject: string;
  html: string | null;
  text: string | null;
}

export interface CompiledCampaign {
  subject: Render;
  html: Render | undefined;
  /** Given, or derived from the HTML when only HTML was given. */
  text: Render | undefined;
}

export function compileCampaign(content: CampaignContent): CompiledCampaign {
  const html = content.html === null ? undefined : compileTemplate('html', content.html, true);
  return {
    // The subject is a header: merged raw, its encoding is the MIME layer's job.
    subject: compileTemplate('subject', content.subject, false),
    html,
    text: content.text !== null ? compileTemplate('text', content.text, false) : html && textFromHtml(content.html!, html),
  };
}

function textFromHtml(source: string, html: Render): Render {
  try {
    return compileTemplate('text', textTemplateFromHtml(source), false);
  } catch {
    return (vars) => htmlToText(html(vars));
  }
}
