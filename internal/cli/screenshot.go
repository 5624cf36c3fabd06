package cli

import (
	"context"
	"fmt"

	"atelier/internal/agentapi"
	"atelier/internal/client"
)

// screenshotFlags are the flags of screenshot, whatever the desktop is
// reached through.
type screenshotFlags struct {
	socket string
	out    string
	format string
	scale  float64
}

func runScreenshot(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "screenshot", "SESSION -o FILE | --socket PATH -o FILE  [--format png|jpeg] [--scale S]")
	var f screenshotFlags
	fs.StringVar(&f.socket, "socket", "", "the desktop's agent.sock")
	fs.StringVar(&f.out, "o", "", "write the image to `FILE`")
	fs.StringVar(&f.format, "format", agentapi.FormatPNG, "png or jpeg")
	fs.Float64Var(&f.scale, "scale", 1, "scale the image by S, from 0.05 to 1")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if f.socket == "" && len(pos) == 1 {
		// A session: through the fleet's API.
		return fleetScreenshot(ctx, env, pos[0], f.out, client.ScreenshotOptions{Format: f.format, Scale: f.scale}, false)
	}
	if f.socket == "" || f.out == "" || len(pos) > 0 {
		fs.Usage()
		return fmt.Errorf("%w: screenshot needs a SESSION, or --socket and -o", ErrUsage)
	}
	req := agentapi.Request{V: agentapi.Version, Action: agentapi.Screenshot, Format: f.format}
	if f.scale != 1 {
		req.Scale = f.scale
	}
	// Check locally, so a bad flag is a usage error before anything is sent.
	if err := req.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	client := agentapi.UnixClient(f.socket)
	defer client.Close()
	resp, err := client.Do(ctx, req)
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	if err := saveImage(env, f.out, 1, resp.Image); err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.Stdout, "%s: %s %dx%d, %d bytes\n", f.out, resp.Image.Format, resp.Image.Width, resp.Image.Height, resp.Image.Size)
	return err
}
