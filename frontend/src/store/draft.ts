// The brief being written, shared by the home page and the session page so it survives the
// navigation after "Start" creates a session, and cleared once the server accepts the start (the
// model picks stay for the next run).

import { create } from "zustand";
import type { ApprovalMode, ModelChoices, Stage } from "../protocol/types";

export interface DraftStore {
  brief: string;
  approval: ApprovalMode;
  /** The model picked per agent (only what the user touched; kept for the next run). */
  models: ModelChoices;
  setBrief(brief: string): void;
  setApproval(approval: ApprovalMode): void;
  setModel(stage: Stage, id: string): void;
  clear(): void;
}

export const useDraftStore = create<DraftStore>()((set) => ({
  brief: "",
  approval: "each_stage",
  models: {},
  setBrief: (brief) => set({ brief }),
  setApproval: (approval) => set({ approval }),
  setModel: (stage, id) => set((s) => ({ models: { ...s.models, [stage]: id } })),
  clear: () => set({ brief: "" }),
}));
