/**
 * What a completed function call means: which configured tool it names, and whether it is
 * answered at once (built-in tools, and calls that cannot run) or run over HTTP by the shell.
 * Pure: the session applies the decision (call control, the arbiter's hold, the output).
 */
import { toolName } from '../config.js';
import type { HttpTool, ToolConfig } from '../config.js';
import { toolOutputs } from './agent-script.js';
import type { ControlRequest } from './call-control.js';
import type { ToolOutcome } from './tool-calls.js';

export type ToolDispatch =
  /** the shell runs it; the result comes back as an input */
  | { kind: 'run-http'; tool: HttpTool; arguments: unknown }
  /** answered now; `control` is what the call does once the agent's last words are heard */
  | { kind: 'answer'; outcome: ToolOutcome; control: ControlRequest | null };

export function dispatchToolCall(name: string, rawArguments: string, tools: readonly ToolConfig[]): ToolDispatch {
  const tool = tools.find((t) => toolName(t) === name);
  if (tool === undefined) return { kind: 'answer', outcome: { ok: false, error: `unknown tool "${name.slice(0, 64)}"` }, control: null };
  let args: unknown;
  try {
    args = rawArguments.trim() === '' ? {} : JSON.parse(rawArguments);
  } catch (err) {
    return { kind: 'answer', outcome: { ok: false, error: `arguments are not valid JSON: ${(err as Error).message}` }, control: null };
  }
  switch (tool.type) {
    case 'end_call':
      return { kind: 'answer', outcome: { ok: true, output: toolOutputs.ending() }, control: { kind: 'end', reason: 'agent-ended' } };
    case 'transfer_call':
      return { kind: 'answer', outcome: { ok: true, output: toolOutputs.transferring(tool.to) }, control: { kind: 'transfer', to: tool.to } };
    case 'http':
      return { kind: 'run-http', tool, arguments: args };
  }
}

/** The text written back as the call's output: the tool's answer, or a JSON error the model can speak about. */
export function outputText(outcome: ToolOutcome): string {
  return outcome.ok ? outcome.output : toolOutputs.error(outcome.error);
}
