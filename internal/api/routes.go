package api

import (
	"net/http"

	"atelier/internal/apitype"
	"atelier/internal/audit"
)

// route is one entry of the API's surface.
type route struct {
	pattern string
	h       handler
	// open routes need no bearer token.
	open bool
	// scrape routes take the metrics token as well as the API's.
	scrape bool
	// doc describes the route in the OpenAPI document.
	doc doc
}

// Statuses and codes several routes answer with.
var (
	badID       = errs(http.StatusBadRequest, apitype.CodeBadID)
	notFound    = errs(http.StatusNotFound, apitype.CodeNotFound)
	unavailable = errs(http.StatusServiceUnavailable, apitype.CodeUnavailable)
	noTasks     = unavailable // a fleet that runs no tasks
	agentDown   = errs(http.StatusBadGateway, apitype.CodeUnavailable)
	refused     = errs(http.StatusBadRequest, agentCodes...)
	tokens      = errs(http.StatusForbidden, tokenCodes...)
)

// routes is the whole HTTP surface of the fleet, on one page.
func (s *Server) routes() []route {
	return []route{
		{pattern: "GET /health", h: s.handleHealth, open: true, doc: doc{summary: "liveness and version", out: apitype.Health{}}},
		{pattern: "GET /ready", h: s.handleReady, open: true, doc: doc{summary: "readiness: store writable, runtime answering, desktops reconciled",
			out: apitype.Ready{}, errs: []answer{errs(http.StatusServiceUnavailable, apitype.CodeNotReady)}}},
		{pattern: "GET /metrics", h: s.handleMetrics, scrape: true, doc: doc{summary: "the fleet's metrics in the Prometheus text format (the API token or ATELIER_METRICS_TOKEN)",
			media: mediaPrometheus, errs: []answer{notFound}}},
		{pattern: "GET /openapi.json", h: s.handleOpenAPI, open: true, doc: doc{summary: "this document (OpenAPI 3.1)"}},

		{pattern: "POST /sessions", h: s.handleCreateSession, doc: doc{summary: "create a session (?wait=ready: once its desktop answers)",
			in: apitype.CreateSession{}, out: apitype.Session{}, status: http.StatusCreated, params: waitDocParams,
			errs: []answer{errs(400, apitype.CodeBadTheme, apitype.CodeBadResolution, apitype.CodeBadID), notFound,
				errs(409, apitype.CodeSnapshotInUse, apitype.CodeBusy), tooManySessions, unavailable, errs(504, apitype.CodeNotReady)}}},
		{pattern: "GET /sessions", h: s.handleListSessions, doc: doc{summary: "list sessions", out: apitype.SessionList{}}},
		{pattern: "GET /sessions/{id}", h: s.handleGetSession, doc: doc{summary: "a session (?wait=ready waits as create does)",
			out: apitype.Session{}, params: waitDocParams,
			errs: []answer{errs(400, apitype.CodeBadRequest, apitype.CodeBadID), notFound, errs(409, apitype.CodeNotRunning), unavailable, errs(504, apitype.CodeNotReady)}}},
		{pattern: "DELETE /sessions/{id}", h: s.handleDeleteSession, doc: doc{summary: "delete a session (?purge=true: its home too)",
			status: http.StatusNoContent, params: []param{boolQuery("purge", "delete the home and the audit log too")},
			errs: []answer{errs(400, apitype.CodeBadRequest, apitype.CodeBadID), notFound, errs(409, apitype.CodeBusy), unavailable}}},
		{pattern: "POST /sessions/{id}/stop", h: s.handleStopSession, doc: doc{summary: "stop a session's desktop, keeping its home",
			out: apitype.Session{}, errs: []answer{badID, notFound, errs(409, apitype.CodeBusy), unavailable}}},
		{pattern: "POST /sessions/{id}/start", h: s.handleStartSession, doc: doc{summary: "start a stopped session (?wait=ready waits)",
			out: apitype.Session{}, params: waitDocParams,
			errs: []answer{errs(400, apitype.CodeBadRequest, apitype.CodeBadID), notFound, errs(409, apitype.CodeBusy), tooManySessions, unavailable, errs(504, apitype.CodeNotReady)}}},
		{pattern: "PUT /sessions/{id}/theme", h: s.handleSetTheme, doc: themeDoc},
		{pattern: "PUT /sessions/{id}/resolution", h: s.handleSetResolution, doc: doc{summary: "change the desktop's size, live: screenshots, the live view and a running task follow",
			in: apitype.SetResolution{}, out: apitype.Session{},
			errs: []answer{errs(400, apitype.CodeBadResolution, apitype.CodeBadID), notFound, errs(409, apitype.CodeBusy), unavailable}}},
		{pattern: "POST /sessions/{id}/theme", h: s.handleSetTheme, doc: themeDoc},
		{pattern: "GET /sessions/{id}/screenshot", h: s.handleScreenshot, doc: doc{summary: "a screenshot of the desktop; its geometry in X-Image-* headers",
			media: mediaImage, params: []param{query("format", "png (default) or jpeg"), query("scale", "0.05 to 1"), query("quality", "jpeg quality, 1 to 100"),
				query("region", "only this part of the desktop: x,y,width,height in its pixels")},
			errs: []answer{errs(400, apitype.CodeBadRequest, apitype.CodeBadID), refused, notFound, errs(409, apitype.CodeNotRunning, apitype.CodeBusy), agentDown, unavailable}}},
		{pattern: "POST /sessions/{id}/actions", h: s.handleActions, doc: doc{summary: "run protocol-v1 actions: one action, a list, or {actions, observe}",
			in: apitype.Actions{}, out: apitype.ActionsResult{}, params: []param{boolQuery("observe", "add a screenshot after the actions"), leaseParam},
			errs: []answer{errs(400, apitype.CodeBadAction, apitype.CodeBadID), refused, notFound,
				errs(409, apitype.CodeNotRunning, apitype.CodeBusy, apitype.CodeControlHeld, apitype.CodeBadLease, apitype.CodeAgentOutdated), agentDown, unavailable}}},

		// A home's files, paths relative to it; never through a link.
		{pattern: "PUT /sessions/{id}/files/{path...}", h: s.handlePutFile, doc: doc{summary: "upload a file into the home (the body, streamed; its directory must exist); it replaces a file there whole",
			inMedia: mediaFile, out: apitype.FileWritten{}, errs: append(fileErrs, errs(507, apitype.CodeHomeFull))}},
		{pattern: "GET /sessions/{id}/files/{path...}", h: s.handleGetFile, doc: doc{summary: "download a regular file of the home",
			media: mediaFile, errs: fileErrs}},
		{pattern: "DELETE /sessions/{id}/files/{path...}", h: s.handleDeleteFile, doc: doc{summary: "delete a file, a link (not its target) or an empty directory of the home",
			status: http.StatusNoContent, errs: append(fileErrs, errs(409, apitype.CodeNotEmpty))}},
		{pattern: "GET /sessions/{id}/dir/{path...}", h: s.handleListDir, doc: doc{summary: "list a directory of the home (empty path: the home); links are listed, not followed",
			out: apitype.FileList{}, errs: append(fileErrs, errs(409, apitype.CodeNotDir))}},

		// The clipboard, through the input pipeline: setting it is input.
		{pattern: "GET /sessions/{id}/clipboard", h: s.handleGetClipboard, doc: doc{summary: "read the desktop's clipboard (?mime=image/png for an image; text by default)",
			out: apitype.Clipboard{}, params: []param{query("mime", "text/plain;charset=utf-8 (default) or image/png")},
			errs: []answer{errs(400, apitype.CodeBadAction, apitype.CodeBadID), refused, notFound, errs(409, apitype.CodeNotRunning, apitype.CodeBusy, apitype.CodeAgentOutdated), agentDown, unavailable}}},
		{pattern: "PUT /sessions/{id}/clipboard", h: s.handleSetClipboard, doc: doc{summary: "set the desktop's clipboard: text, or a PNG in base64 (mime image/png)",
			in: apitype.Clipboard{}, status: http.StatusNoContent, params: []param{leaseParam},
			errs: []answer{errs(400, apitype.CodeBadAction, apitype.CodeBadID, apitype.CodeMissingField), refused, notFound,
				errs(409, apitype.CodeNotRunning, apitype.CodeBusy, apitype.CodeControlHeld, apitype.CodeBadLease, apitype.CodeAgentOutdated), agentDown, unavailable}}},

		// One control lease per session: a task, a person, or nobody.
		{pattern: "GET /sessions/{id}/control", h: s.handleControl, doc: doc{summary: "who holds the session's control; where its task stands",
			out: apitype.ControlState{}, errs: []answer{badID, notFound}}},
		{pattern: "POST /sessions/{id}/takeover", h: s.handleTakeover, doc: doc{summary: "take control for a person; a running task pauses",
			in: struct{}{}, out: apitype.Lease{}, errs: []answer{badID, notFound, errs(409, apitype.CodeControlHeld), unavailable}}},
		{pattern: "POST /sessions/{id}/handback", h: s.handleHandback, doc: doc{summary: "end a person's lease (or answer a task's question); the task resumes",
			in: apitype.Handback{}, out: apitype.ControlState{}, params: []param{leaseParam},
			errs: []answer{badID, notFound, errs(409, apitype.CodeControlHeld, apitype.CodeBadLease, apitype.CodeNothingHeld)}}},

		// The live view: these carry their own gate, the embed token in the
		// URL (403 without a valid one); minting one needs the bearer token.
		{pattern: "POST /sessions/{id}/embed-token", h: s.handleEmbedToken, doc: doc{summary: "mint a live-view link (view or control)",
			in: apitype.EmbedToken{}, out: apitype.EmbedLink{}, status: http.StatusCreated, errs: []answer{badID, notFound}}},
		{pattern: "POST /sessions/{id}/embed-tokens/revoke", h: s.handleRevokeEmbedTokens, doc: doc{summary: "refuse every live-view link minted so far for the session and close its open views",
			out: apitype.EmbedRevocation{}, errs: []answer{badID, notFound}}},
		{pattern: "GET /sessions/{id}/embed", h: s.viewRoute("GET /sessions/{id}/embed"), open: true, doc: doc{summary: "the live view's page",
			media: mediaHTML, params: []param{embedToken}, errs: []answer{tokens, notFound}}},
		{pattern: "GET /sessions/{id}/vnc", h: s.viewRoute("GET /sessions/{id}/vnc"), open: true, doc: doc{summary: "the live view's WebSocket to the desktop's RFB server",
			status: http.StatusSwitchingProtocols, media: mediaWebSocket, params: []param{embedToken, query("viewer", "the viewer's id (a control viewer's claim)")},
			errs: []answer{errs(400, apitype.CodeBadViewer), tokens, notFound, tooManyStreams, errs(503, apitype.CodeShuttingDown)}}},
		{pattern: "GET /sessions/{id}/embed/control", h: s.viewRoute("GET /sessions/{id}/embed/control"), open: true, doc: doc{summary: "the session's control, for the live view's page",
			out: apitype.ControlState{}, params: []param{embedToken}, errs: []answer{tokens, notFound}}},
		{pattern: "POST /sessions/{id}/embed/control", h: s.viewRoute("POST /sessions/{id}/embed/control"), open: true, doc: doc{summary: "take control (answers a Lease) or hand it back (a ControlState) from the live view's page",
			in: apitype.EmbedControl{}, out: apitype.Lease{}, params: []param{embedToken},
			errs: []answer{errs(400, apitype.CodeBadViewer), errs(403, append([]string{apitype.CodeBadOrigin}, tokenCodes...)...), notFound,
				errs(409, apitype.CodeControlHeld, apitype.CodeBadLease, apitype.CodeNothingHeld), unavailable}}},
		{pattern: "GET /view/assets/", h: s.viewRoute("GET /view/assets/"), open: true, doc: assetDoc},
		{pattern: "GET /view/novnc/core/", h: s.viewRoute("GET /view/novnc/core/"), open: true, doc: assetDoc},
		{pattern: "GET /view/novnc/vendor/", h: s.viewRoute("GET /view/novnc/vendor/"), open: true, doc: assetDoc},

		{pattern: "POST /sessions/{id}/snapshot", h: s.handleTakeSnapshot, doc: doc{summary: "snapshot the session's home",
			out: apitype.Snapshot{}, status: http.StatusCreated, errs: []answer{badID, notFound, errs(409, apitype.CodeBusy, apitype.CodeNotRunning), unavailable}}},
		{pattern: "GET /snapshots", h: s.handleListSnapshots, doc: doc{summary: "list snapshots", out: apitype.SnapshotList{}, errs: []answer{notFound}}},
		{pattern: "DELETE /snapshots/{id}", h: s.handleDeleteSnapshot, doc: doc{summary: "delete a snapshot",
			status: http.StatusNoContent, errs: []answer{badID, notFound, errs(409, apitype.CodeSnapshotInUse)}}},

		{pattern: "GET /budget", h: s.handleBudget, doc: doc{summary: "today's spend against the daily cap", out: apitype.Budget{}}},

		{pattern: "POST /sessions/{id}/task", h: s.handleSubmitTask, doc: doc{summary: "give the session a goal (or a script); 202 once it runs",
			in: apitype.TaskSpec{}, out: apitype.TaskSubmitted{}, status: http.StatusAccepted,
			errs: []answer{badID, notFound, errs(409, apitype.CodeTaskRunning, apitype.CodeNotRunning, apitype.CodeControlHeld, apitype.CodeModelUnpriced),
				errs(503, apitype.CodeUnavailable, apitype.CodeShuttingDown)}}},
		{pattern: "GET /sessions/{id}/tasks", h: s.handleListTasks, doc: doc{summary: "the session's tasks, newest first",
			out: apitype.TaskList{}, errs: []answer{noTasks}}},
		{pattern: "POST /tasks", h: s.handleDispatch, doc: doc{summary: "dispatch one goal to many sessions (session_ids or label): one task each; each session's outcome reported",
			in: apitype.Dispatch{}, out: apitype.Batch{}, status: http.StatusCreated,
			errs: []answer{errs(400, apitype.CodeBadRequest), notFound, errs(409, apitype.CodeModelUnpriced), errs(503, apitype.CodeUnavailable, apitype.CodeShuttingDown)}}},
		{pattern: "GET /batches", h: s.handleListBatches, doc: doc{summary: "the newest batches", out: apitype.BatchList{}, errs: []answer{noTasks}}},
		{pattern: "GET /batches/{id}", h: s.handleGetBatch, doc: doc{summary: "a batch: its members' outcomes and tasks", out: apitype.Batch{}, errs: []answer{notFound, noTasks}}},
		{pattern: "GET /batches/{id}/events", h: s.streamed(s.handleBatchEvents), doc: doc{summary: "a batch's member task events as Server-Sent Events (task), then the ended batch (end)",
			out: apitype.BatchEvent{}, media: mediaSSE, errs: []answer{notFound, tooManyStreams, noTasks}}},
		{pattern: "GET /tasks/{id}", h: s.handleGetTask, doc: doc{summary: "a task with its events", out: apitype.Task{}, errs: []answer{notFound, noTasks}}},
		{pattern: "GET /tasks/{id}/stream", h: s.streamed(s.handleTaskStream), doc: doc{summary: "a task's events as Server-Sent Events, until the final one",
			out: apitype.TaskEvent{}, media: mediaSSE, params: []param{header(apitype.HeaderLastEventID, "resume after this event id")},
			errs: []answer{errs(400, apitype.CodeBadRequest), notFound, tooManyStreams, noTasks}}},
		{pattern: "POST /tasks/{id}/cancel", h: s.handleCancelTask, doc: doc{summary: "cancel a running task",
			out: apitype.TaskCancel{}, status: http.StatusAccepted, errs: []answer{notFound, errs(409, apitype.CodeTaskEnded), noTasks}}},
		{pattern: "GET /tasks/{id}/steps/{step}/screenshot", h: s.handleTaskScreenshot, doc: doc{summary: "the screenshot the model saw at a step",
			media: mediaPNG, errs: []answer{notFound, noTasks}}},

		{pattern: "GET /sessions/{id}/audit", h: s.handleAudit, doc: doc{summary: "the session's audit entries as JSON lines (follow=1 streams new ones)",
			out: audit.Entry{}, media: mediaJSONL, params: []param{query(audit.ParamKind, "only these kinds, comma-separated"),
				query(audit.ParamSince, "after this seq, or at or after this RFC 3339 time"), query(audit.ParamLimit, "at most this many entries"),
				boolQuery(audit.ParamFollow, "keep the stream open for new entries")},
			errs: []answer{errs(400, apitype.CodeBadRequest, apitype.CodeBadID), notFound, tooManyStreams, unavailable}}},

		{pattern: "GET /events", h: s.streamed(s.handleEvents), doc: doc{summary: "the sessions' lifecycle events as JSON lines, as they happen (a blank line keeps an idle stream alive)",
			out: apitype.SessionEvent{}, media: mediaJSONL, errs: []answer{tooManyStreams}}},

		// The Model Context Protocol (streamable HTTP): the API's sessions
		// as tools for agents.
		{pattern: "POST /mcp", h: s.handleMCP, doc: mcpDoc("send an MCP JSON-RPC message; the answer is JSON or a stream of them", http.StatusOK, mediaJSON+"|"+mediaSSE)},
		{pattern: "GET /mcp", h: s.handleMCP, doc: mcpDoc("the MCP session's stream of server messages (Last-Event-ID resumes)", http.StatusOK, mediaSSE)},
		{pattern: "DELETE /mcp", h: s.handleMCP, doc: mcpDoc("end an MCP session", http.StatusNoContent, "")},
	}
}

var (
	fileErrs = []answer{errs(400, apitype.CodeBadPath, apitype.CodeBadID), notFound, errs(409, apitype.CodeNotRunning, apitype.CodeNotFile), unavailable}
	themeDoc = doc{summary: "change the session's theme, live", in: apitype.SetTheme{}, out: apitype.Session{},
		errs: []answer{errs(400, apitype.CodeBadTheme, apitype.CodeBadID), refused, notFound, errs(409, apitype.CodeNotRunning, apitype.CodeBusy), agentDown, unavailable}}
	assetDoc = doc{summary: "the live view's files (scripts, styles, noVNC's modules)", media: mediaFile, errs: []answer{errs(http.StatusNotFound)}}
)

// handler is an API handler: it writes a success itself and returns an
// error for serve to write.
type handler func(w http.ResponseWriter, r *http.Request) error
