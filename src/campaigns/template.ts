import Handlebars from 'handlebars';

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
    readonly line: number | undefined,
    readonly column: number | undefined,
    detail: string,
  ) {
    super(`${field}: template error${line ? ` at line ${line}${column !== undefined ? `, column ${column + 1}` : ''}` : ''}: ${detail}`);
  }
}

// A sandbox of its own: no helpers registered by anyone else, none callable but the built-ins
// knownHelpersOnly allows, and Handlebars' default ban on prototype properties stays on.
const handlebars = Handlebars.create();
const COMPILE_OPTIONS = { knownHelpersOnly: true, strict: false, preventIndent: true } as const;

function lexerPosition(): { first_line: number; first_column: number } | undefined {
  return (handlebars as unknown as { Parser?: { lexer?: { yylloc?: { first_line: number; first_column: number } } } }).Parser?.lexer?.yylloc;
}

/**
 * Compiles a user's template once (per campaign, not per message). Syntax errors are reported
 * with line and column now, instead of failing at the first send.
 */
export function compileTemplate(field: string, source: string, escapeHtml: boolean): Render {
  try {
    handlebars.parse(source);
    const compiled = handlebars.compile(source, { ...COMPILE_OPTIONS, noEscape: !escapeHtml });
    compiled({ name: '', email: '', attributes: {}, unsubscribeUrl: '' });
    return compiled;
  } catch (err) {
    const e = err as Error & { lineNumber?: number; column?: number };
    // A parse error names its line only in its text; the parser's lexer still holds where it stopped.
    const stoppedAt = e.message.startsWith('Parse error') ? lexerPosition() : undefined;
    const lineFromMessage = /line (\d+)/.exec(e.message)?.[1];
    const line = e.lineNumber ?? stoppedAt?.first_line ?? (lineFromMessage ? Number(lineFromMessage) : undefined);
    const detail = e.message.split('\n').at(-1) ?? e.message;
    throw new TemplateError(field, line, e.column ?? stoppedAt?.first_column, detail);
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
  text: Render | undefined;
}

export function compileCampaign(content: CampaignContent): CompiledCampaign {
  return {
    // The subject is a header: merged raw, its encoding is the MIME layer's job.
    subject: compileTemplate('subject', content.subject, false),
    html: content.html === null ? undefined : compileTemplate('html', content.html, true),
    text: content.text === null ? undefined : compileTemplate('text', content.text, false),
  };
}
