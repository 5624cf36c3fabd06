package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"atelier/internal/agentapi"
	"atelier/internal/apitype"
	"atelier/internal/browsertest"
	"atelier/internal/config"
	"atelier/internal/console"
	"atelier/internal/fleettest"
	"atelier/internal/model/modeltest"
)

const token = "console-test-token-0123456789abcdef"

func TestMain(m *testing.M) { fleettest.Main(m) }

// startBrowser starts a headless Chromium at 1280×720.
func startBrowser(t testing.TB) context.Context { return browsertest.Start(t, 1280, 720) }

type browser struct {
	t   testing.TB
	ctx context.Context
}

func (b browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](b browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS waits (at most d) until the expression js is true.
func (b browser) waitJS(js, what string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for !eval[bool](b, js) {
		if time.Now().After(deadline) {
			status := eval[string](b, `(document.getElementById("status") || {}).textContent || ""`)
			b.t.Fatalf("the console never showed %s (status line %q)", what, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click clicks a button by its script (the live view beside it may be
// busy drawing).
func (b browser) click(sel string) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf(`(document.querySelector(%q).click(), true)`, sel))
}

// cookie returns the browser's console cookie.
func (b browser) cookie() *network.Cookie {
	b.t.Helper()
	res, err := chromedp.Run(b.ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{})
	})
	if err != nil {
		b.t.Fatalf("read cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == console.CookieName {
			return c
		}
	}
	b.t.Fatal("no console cookie in the browser")
	return nil
}

// request sends one request to the fleet with a cookie and headers.
func request(t testing.TB, method, u, cookie string, header map[string]string, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: console.CookieName, Value: cookie})
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// consoleRoutes are a request to every console route but the sign-in's.
var consoleRoutes = []struct{ method, path string }{
	{"GET", "/console/"}, {"GET", "/console/sessions/sess_x"}, {"GET", "/console/batches"}, {"GET", "/console/money"},
	{"GET", "/console/thumbs/sess_x"}, {"GET", "/console/audit/sess_x/verify"}, {"GET", "/console/assets/console.js"},
	{"GET", "/console/api/sessions"}, {"POST", "/console/api/sessions"}, {"GET", "/console/api/budget"},
	{"DELETE", "/console/api/sessions/sess_x"}, {"POST", "/console/signout"}, {"GET", "/console/api/batches"},
	{"GET", "/console/no-such-page"},
}

// checkSignedOut: with this cookie (or none), every console route refuses
// and shows nothing of the fleet.
func checkSignedOut(t *testing.T, base, cookie, sessionID string) {
	t.Helper()
	for _, rt := range consoleRoutes {
		path := rt.path
		if sessionID != "" {
			path = strings.ReplaceAll(path, "sess_x", sessionID)
		}
		status, body := request(t, rt.method, base+path, cookie, map[string]string{"Content-Type": "application/json"}, "{}")
		if status != http.StatusUnauthorized || (sessionID != "" && strings.Contains(body, sessionID) && !strings.Contains(path, sessionID)) {
			t.Errorf("signed out: %s %s = %d %.200q, want 401 showing nothing", rt.method, path, status, body)
		}
	}
}

// TestConsole drives the console in Chromium against a real fleet: sign
// in; create a session and see its thumbnail; act through the API and
// see the thumbnail change; run a scripted task and see its steps with
// screenshots; take over and hand back; dispatch to three sessions and
// see the board finish; the money page; state-changing requests from
// another origin or without the CSRF token fail; signed out, and with a
// changed API token, every route refuses.
func TestConsole(t *testing.T) {
	// Goals without a script go to Holo3, played by the fake model server;
	// scripts run on the scripted backend.
	thought := "The desktop shows a terminal; the goal is met."
	reply, _ := json.Marshal(map[string]any{"note": nil, "thought": thought, "tool_call": map[string]any{"tool_name": "answer", "content": "done"}})
	question := "Which account should I sign in with?"
	ask, _ := json.Marshal(map[string]any{"note": nil, "thought": "Only the person knows.", "tool_call": map[string]any{"tool_name": "ask_user", "question": question}})
	srv := modeltest.OpenAISteps(t, []modeltest.OpenAIStep{{Content: reply, PromptTokens: 2400, CompletionTokens: 80},
		{Content: ask, PromptTokens: 2400, CompletionTokens: 40}, {Content: reply, PromptTokens: 2400, CompletionTokens: 80}})
	f := fleettest.New(t, fleettest.Options{Token: token, Model: config.Model{Backend: "holo", HoloEndpoint: srv.URL}})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	checkSignedOut(t, f.URL, "", "")
	checkSignedOut(t, f.URL, "forged-cookie-value", "")

	b := browser{t: t, ctx: startBrowser(t)}
	// A wrong token is refused.
	b.run("wrong sign-in", chromedp.Navigate(f.URL+"/console/"), chromedp.WaitVisible("#token"),
		chromedp.SendKeys("#token", "not-the-token"), chromedp.Submit("#token"), chromedp.WaitVisible(".notice"))
	b.run("sign in", chromedp.SendKeys("#token", token), chromedp.Submit("#token"), chromedp.WaitVisible("#grid"))
	ck := b.cookie()
	if !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Expires <= float64(time.Now().Unix()) || ck.Path != "/console" {
		t.Errorf("sign-in cookie %+v: want HttpOnly, SameSite=Strict, an expiry, path /console", ck)
	}
	if eval[string](b, `document.cookie`) != "" {
		t.Error("the page's script can read the sign-in cookie")
	}
	csrf := eval[string](b, `document.querySelector('meta[name="csrf-token"]').content`)

	// Create a session from the console; its thumbnail appears.
	b.run("create", chromedp.SendKeys(`#create input[name="label"]`, "crew"), chromedp.Click(`#create button[type="submit"]`))
	b.waitJS(`[...document.querySelectorAll("#grid .card")].some(c => c.dataset.state === "ready" && Number(c.dataset.thumbs) > 0)`, "a ready card with a thumbnail", 90*time.Second)
	sid := eval[string](b, `document.querySelector("#grid .card").dataset.id`)
	if w := eval[int](b, `document.querySelector("#grid .card img").naturalWidth`); w != 320 {
		t.Errorf("thumbnail is %d pixels wide, want 320 (a quarter of 1280)", w)
	}
	// Acting through the API changes the thumbnail.
	sum := `(() => { const i = document.querySelector("#grid .card img"); const c = document.createElement("canvas");
		c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext("2d"); g.drawImage(i, 0, 0);
		const d = g.getImageData(0, 0, c.width, c.height).data; let s = 0; for (let k = 0; k < d.length; k += 4) s = (s * 31 + d[k] + d[k+1] + d[k+2]) % 1000000007; return s; })()`
	before := eval[int](b, sum)
	if _, err := f.Client.Act(ctx, sid, agentapi.Request{Action: agentapi.Key, Text: "super+Return"}); err != nil {
		t.Fatal(err)
	}
	b.waitJS(fmt.Sprintf(`%s !== %d`, sum, before), "the thumbnail change after an action", 20*time.Second)

	// A scripted task's steps stream in with their screenshots.
	b.run("session page", chromedp.Navigate(f.URL+"/console/sessions/"+sid), chromedp.WaitVisible("#task"))
	b.waitJS(`(() => { const d = document.getElementById("view").contentDocument; const st = d && d.getElementById("state"); return !!st && st.dataset.state === "live"; })()`,
		"the live view, with control", 30*time.Second)
	// The desktop's words are shown as text: markup typed in it (as a
	// prompt-injected page could make a task type) never becomes markup.
	script := `[{"action":"type","text":"echo console > ~/console\n"},{"action":"type","text":"# <img src=x onerror=\"document.title='pwned'\">\n"},{"action":"wait","duration":1}]`
	b.run("start task", chromedp.SetValue(`#task textarea[name="goal"]`, "write console"), chromedp.SetValue(`#task textarea[name="script"]`, script),
		chromedp.Click(`#task button[type="submit"]`))
	b.waitJS(`[...document.querySelectorAll("#steps li")].some(li => li.textContent.startsWith("Ended done"))`, "the task's end", 40*time.Second)
	b.waitJS(`[...document.querySelectorAll("#steps img")].length >= 2 && [...document.querySelectorAll("#steps img")].every(i => i.complete && i.naturalWidth > 0)`, "step screenshots", 10*time.Second)
	if got := eval[string](b, `document.querySelector("#steps li").textContent`); !strings.Contains(got, `type "echo console`) {
		t.Errorf("first step shows %q, want the typed command", got)
	}
	f.Home(sid).WaitFile(t, "console", "console\n")
	b.waitJS(`document.getElementById("verified").textContent.startsWith("chain verified")`, "a verified audit chain", 15*time.Second)
	b.waitJS(`[...document.querySelectorAll("#audit td")].some(td => td.textContent === "console")`, "audit entries by the console", 15*time.Second)
	b.waitJS(`[...document.querySelectorAll("#audit td, #steps p")].some(e => e.textContent.includes("<img src=x"))`, "the typed markup as text", 15*time.Second)
	if n := eval[int](b, `document.querySelectorAll("#audit img, #steps p img").length`); n != 0 || eval[string](b, `document.title`) == "pwned" {
		t.Errorf("typed markup became %d elements (title %q)", n, eval[string](b, `document.title`))
	}

	// A model's step shows its thought and what it saw.
	eval[bool](b, `(document.querySelector('#task textarea[name="script"]').value = "", true)`)
	b.run("model task", chromedp.SetValue(`#task textarea[name="goal"]`, "check the desktop"), chromedp.Click(`#task button[type="submit"]`))
	b.waitJS(fmt.Sprintf(`[...document.querySelectorAll("#steps .thought")].some(p => p.textContent === %q) && [...document.querySelectorAll("#steps li")].some(li => li.textContent.startsWith("Ended done"))`, thought),
		"the model's thought and the task's end", 40*time.Second)
	b.waitJS(`document.querySelectorAll("#steps img").length === 1 && document.querySelector("#steps img").naturalWidth > 0`, "the model's screenshot", 10*time.Second)
	modelTask := eval[string](b, `document.getElementById("taskinfo").textContent.split(" ")[1]`)

	// A task that asks for help is answered from the console.
	b.run("help task", chromedp.SetValue(`#task textarea[name="goal"]`, "sign in"), chromedp.Click(`#task button[type="submit"]`))
	b.waitJS(fmt.Sprintf(`!document.getElementById("help").hidden && document.getElementById("question").textContent === %q`, question), "the task's question", 30*time.Second)
	b.run("answer", chromedp.SendKeys(`#help input[name="message"]`, "the ops account"), chromedp.Click(`#help button[type="submit"]`))
	b.waitJS(`[...document.querySelectorAll("#steps li")].filter(li => li.textContent.startsWith("Ended done")).length === 1 && document.getElementById("help").hidden`, "the answered task's end", 30*time.Second)
	if reqs := srv.Requests(); len(reqs) != 3 || !strings.Contains(requestText(reqs[2]), "the ops account") {
		t.Errorf("the model's request after the answer does not carry it (%d requests)", len(reqs))
	}

	// Take over from the console pauses a running task; hand back resumes it.
	long := `[{"action":"wait","duration":2},{"action":"wait","duration":2},{"action":"wait","duration":2},{"action":"wait","duration":2}]`
	b.run("start long task", chromedp.SetValue(`#task textarea[name="script"]`, long), chromedp.Click(`#task button[type="submit"]`))
	b.waitJS(`document.getElementById("holder").dataset.holder === "task"`, "the task holding control", 15*time.Second)
	b.click("#takeover")
	b.waitJS(`document.getElementById("holder").dataset.holder === "person" && !document.getElementById("handback").disabled`, "control held by a person", 15*time.Second)
	if c, err := f.Client.Control(ctx, sid); err != nil || c.Holder == nil || c.Holder.Kind != "person" {
		t.Errorf("control after take over: %+v %v, want a person", c, err)
	}
	b.click("#handback")
	b.waitJS(`document.getElementById("holder").dataset.holder !== "person"`, "control handed back", 15*time.Second)
	b.waitJS(`[...document.querySelectorAll("#steps li")].some(li => li.textContent.startsWith("Ended done"))`, "the resumed task's end", 40*time.Second)
	if !eval[bool](b, `[...document.querySelectorAll("#steps li")].some(li => li.textContent.includes("paused for human"))`) {
		t.Error("the task console showed no pause")
	}

	// Snapshots: take one, clone it into a new session, delete it.
	b.click("#snap")
	b.waitJS(`document.querySelectorAll("#snaps li").length === 1`, "the snapshot", 60*time.Second)
	snap := eval[string](b, `document.querySelector("#snaps li").dataset.id`)
	b.click("#snaps li button")
	b.waitJS(`document.getElementById("status").textContent.startsWith("cloned into ")`, "the clone", 90*time.Second)
	clone := strings.TrimPrefix(eval[string](b, `document.getElementById("status").textContent`), "cloned into ")
	if c, err := f.Client.Session(ctx, clone, 0); err != nil || c.SnapshotID != snap {
		t.Errorf("clone %s: %+v %v, want a session from %s", clone, c, err, snap)
	}
	if err := f.Client.DeleteSession(ctx, clone, true); err != nil {
		t.Fatal(err)
	}
	eval[bool](b, `(window.confirm = () => true, true)`)
	b.click("#snaps li button.danger")
	b.waitJS(`document.querySelectorAll("#snaps li").length === 0`, "the snapshot deleted", 20*time.Second)

	// Dispatch to three sessions; the board finishes with three done.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := f.Client.CreateSession(ctx, apitype.CreateSession{Label: "crew"}, 90*time.Second); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	b.run("batches page", chromedp.Navigate(f.URL+"/console/batches"), chromedp.WaitVisible("#dispatch"),
		chromedp.SetValue(`#dispatch textarea[name="goal"]`, "wait a little"), chromedp.SetValue(`#dispatch input[name="label"]`, "crew"),
		chromedp.SetValue(`#dispatch textarea[name="script"]`, `[{"action":"wait","duration":1}]`), chromedp.Click(`#dispatch button[type="submit"]`))
	b.waitJS(`document.getElementById("bstate").dataset.state === "finished" && document.querySelectorAll('#board [data-where="done"] li').length === 3`,
		"the board finished with three done", 60*time.Second)

	// The money page: today against the cap, and 30 days of bars.
	b.run("money", chromedp.Navigate(f.URL+"/console/money"), chromedp.WaitVisible("#spend"))
	if n := eval[int](b, `document.querySelectorAll("svg.chart rect").length`); n != 30 {
		t.Errorf("money chart has %d bars, want 30", n)
	}
	if got := eval[string](b, `document.getElementById("bytask").textContent`); !strings.Contains(got, modelTask) {
		t.Errorf("money by task shows %q, want the model task %s", got, modelTask)
	}
	if got := eval[string](b, `document.getElementById("bymodel").textContent + document.getElementById("spend").textContent`); !strings.Contains(got, "holo") || strings.Contains(got, "Spent $0.0000") {
		t.Errorf("money shows %q, want the holo model's spend", got)
	}

	// Every control has a name a screen reader can say, and a narrow
	// window scrolls down, not sideways.
	for _, p := range []string{"/console/", "/console/sessions/" + sid, "/console/batches", "/console/money"} {
		b.run("open "+p, chromedp.Navigate(f.URL+p), chromedp.WaitReady("main"))
		unnamed := eval[[]string](b, `[...document.querySelectorAll("button, input:not([type=hidden]), select, textarea, a")].filter(e =>
			!(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim() && !e.title).map(e => e.outerHTML.slice(0, 80))`)
		if len(unnamed) > 0 {
			t.Errorf("%s: controls without a name: %v", p, unnamed)
		}
	}
	b.run("narrow", chromedp.EmulateViewport(400, 800), chromedp.Navigate(f.URL+"/console/"), chromedp.WaitVisible("#grid .card"))
	if eval[bool](b, `document.documentElement.scrollWidth > document.documentElement.clientWidth + 1`) {
		t.Error("the fleet page scrolls sideways in a 400-pixel window")
	}

	// State changes need the CSRF token and the console's own origin.
	stop := f.URL + "/console/api/sessions/sess_nosuch/stop"
	for _, c := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"no CSRF token", nil, http.StatusForbidden},
		{"a wrong CSRF token", map[string]string{console.HeaderCSRF: "guess"}, http.StatusForbidden},
		{"another origin", map[string]string{console.HeaderCSRF: csrf, "Origin": "http://evil.example"}, http.StatusForbidden},
		{"a cross-site fetch", map[string]string{console.HeaderCSRF: csrf, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"the console itself", map[string]string{console.HeaderCSRF: csrf, "Origin": f.URL, "Sec-Fetch-Site": "same-origin"}, http.StatusBadRequest}, // past the guard: the API refuses the id
	} {
		if status, body := request(t, "POST", stop, ck.Value, c.header, ""); status != c.want {
			t.Errorf("POST with %s: %d %s, want %d", c.name, status, body, c.want)
		}
	}
	// A page on another origin posting a form at the console (the cookie
	// rides along: same site, other port) is refused and signs nobody out.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<form id="f" method="post" action="%s/console/signout"><input name="csrf" value="%s"></form><script>document.getElementById("f").submit()</script>`, f.URL, csrf)
	}))
	defer evil.Close()
	b.run("evil page", chromedp.Navigate(evil.URL), chromedp.Sleep(time.Second))
	if status, _ := request(t, "GET", f.URL+"/console/api/sessions", ck.Value, nil, ""); status != http.StatusOK {
		t.Errorf("after a cross-origin sign-out form the sign-in answers %d, want it still valid", status)
	}
	// A cross-origin script cannot even send its request with the header.
	b.run("evil fetch", chromedp.Navigate(evil.URL+"/x"))
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q, {method: "POST", credentials: "include", headers: {"X-CSRF-Token": %q}}).then(r => "status " + r.status, e => "refused")`, stop, csrf), chromedp.EvalAwaitPromise))
	if err != nil || got != "refused" {
		t.Errorf("a cross-origin fetch with the CSRF header: %q %v, want refused", got, err)
	}
	if status, _ := request(t, "GET", f.URL+"/console/api/sessions", ck.Value, nil, ""); status != http.StatusOK {
		t.Error("the sign-in ended after a cross-origin fetch")
	}

	// Signing out ends the sign-in on the server: the old cookie refuses.
	b.run("sign out", chromedp.EmulateViewport(1280, 720), chromedp.Navigate(f.URL+"/console/"), chromedp.WaitVisible(".signout button"),
		chromedp.Click(".signout button"), chromedp.WaitVisible("#token"))
	checkSignedOut(t, f.URL, ck.Value, sid)

	// A sign-in made with a token the fleet no longer has refuses.
	status, _ := request(t, "POST", f.URL+"/console/signin", "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, url.Values{"token": {token}}.Encode())
	if status != http.StatusSeeOther {
		t.Fatalf("sign in by form: %d", status)
	}
	second := signInCookie(t, f.URL)
	f.Close()
	f2 := fleettest.New(t, fleettest.Options{Token: token + "-rotated", DataDir: f.DataDir})
	checkSignedOut(t, f2.URL, second, sid)
}

// requestText is the messages of a model request, as JSON.
func requestText(r modeltest.Request) string {
	b, _ := json.Marshal(r.Body["messages"])
	return string(b)
}

// signInCookie signs in with a form post and returns the cookie's value.
func signInCookie(t *testing.T, base string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/console/signin", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			if status, _ := request(t, "GET", base+"/console/api/sessions", c.Value, nil, ""); status != http.StatusOK {
				t.Fatalf("fresh sign-in refused: %d", status)
			}
			return c.Value
		}
	}
	t.Fatal("sign-in set no cookie")
	return ""
}
