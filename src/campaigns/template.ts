import Handlebars from 'handlebars';
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
const COMPILE_OPTIONS = { knownHelpersOnly: true, strict: false, preventIndent: true } as const;
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
const REFUSED_HELPERS = new Set(['log', 'helperMissing', 'blockHelperMissing']);

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
 * Missing values render empty.
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
  try {
    const compiled = handlebars.compile(ast, { ...COMPILE_OPTIONS, noEscape: !escapeHtml });
    const render: Render = (vars) => compiled(vars, RUNTIME_OPTIONS);
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
