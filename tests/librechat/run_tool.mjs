// Runs LibreChat's execute_code tool (createCodeExecutionTool from @librechat/agents) once, the way LibreChat's
// agents do: a tool call carrying the conversation's session_id and the files to inject. Reads a JSON request on
// stdin ({baseUrl, authHeaders, args, session_id, files}) and prints {content, artifact} as JSON. `make test`
// copies it, with package.json and the lock file, to build/librechat-client and installs the package there.
import { createCodeExecutionTool } from "@librechat/agents";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const request = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const tool = createCodeExecutionTool({ baseUrl: request.baseUrl, authHeaders: request.authHeaders });
try {
  const message = await tool.invoke({
    id: "call_1", name: "execute_code", type: "tool_call", args: request.args,
    session_id: request.session_id, _injected_files: request.files,
  });
  console.log(JSON.stringify({ content: message.content, artifact: message.artifact }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message ?? error) }));
}
