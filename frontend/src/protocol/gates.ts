// Approval gate ids, `gate-<stage>-<version>` (docs/protocol.md): the one place the UI makes or
// reads them. The Rust side's twin is `protocol::wire::{gate_id, parse_gate_id}`.

import { isStage, type Stage } from "./types";

export function gateId(stage: Stage, version: number): string {
  return `gate-${stage}-${version}`;
}

/** The stage and version a gate id names, or null when it is not a gate id. */
export function parseGateId(id: string | null | undefined): { stage: Stage; version: number } | null {
  const match = /^gate-([a-z]+)-(\d+)$/.exec(id ?? "");
  if (!match) return null;
  const [, stage, version] = match;
  return isStage(stage) ? { stage, version: Number(version) } : null;
}
