// The brief being written, shared by the home page and the session page so it survives the
// navigation after "Start" creates a session, and cleared once the server accepts the start.

import { create } from "zustand";
import type { ApprovalMode } from "../protocol/types";

export interface DraftStore {
  brief: string;
  approval: ApprovalMode;
  setBrief(brief: string): void;
  setApproval(approval: ApprovalMode): void;
  clear(): void;
}

export const useDraftStore = create<DraftStore>()((set) => ({
  brief: "",
  approval: "each_stage",
  setBrief: (brief) => set({ brief }),
  setApproval: (approval) => set({ approval }),
  clear: () => set({ brief: "" }),
}));
