import { useSessionState } from "../context.ts";
import { SignIn } from "./SignIn.tsx";
import { Workspace } from "./Workspace.tsx";

export function App() {
  const session = useSessionState();
  if (session.status === "checking") return null;
  if (session.status === "signed-out") return <SignIn error={session.error} />;
  return <Workspace user={session.user} />;
}
