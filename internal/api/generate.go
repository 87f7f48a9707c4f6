package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/nexus/nexus/internal/codegen"
)

type generateRequest struct {
	Prompt    *string `json:"prompt"`
	Language  *string `json:"language"`
	Model     *string `json:"model"`
	DatasetID *string `json:"dataset_id"`
	Source    *string `json:"source"`
	// Stream asks for server-sent events, as Accept: text/event-stream
	// does; false answers plain JSON whatever Accept says.
	Stream *bool `json:"stream"`
}

// Validate implements validator.
func (r *generateRequest) Validate() error {
	if r.Prompt == nil || strings.TrimSpace(*r.Prompt) == "" {
		return invalid("prompt", "prompt is required")
	}
	if n := utf8.RuneCountInString(*r.Prompt); n > maxPromptChars {
		return invalid("prompt", fmt.Sprintf("prompt must be at most %d characters, got %d", maxPromptChars, n))
	}
	if r.Language != nil && *r.Language != string(codegen.Python) && *r.Language != string(codegen.SQL) {
		return invalid("language", fmt.Sprintf(`language must be "python" or "sql", got %q`, *r.Language))
	}
	if r.DatasetID != nil && *r.DatasetID == "" {
		return invalid("dataset_id", "dataset_id must not be empty")
	}
	if err := validSource(r.Source, r.DatasetID != nil); err != nil {
		return err
	}
	return validModel(r.Model)
}

type generateResponse struct {
	Code         string   `json:"code"`
	Language     string   `json:"language"`
	IsValid      bool     `json:"is_valid"`
	ErrorMessage *string  `json:"error_message"`
	Warnings     []string `json:"warnings"`
	Model        string   `json:"model"`
	Circuit      string   `json:"circuit"`
	FallbackUsed bool     `json:"fallback_used"`
	// Provider is the provider whose target answered.
	Provider string `json:"provider"`
	// Attempts is how many LLM requests the call made, retries, failovers
	// and hedges included.
	Attempts int `json:"attempts"`
	// Failover is true when a target other than the circuit's first
	// answered; omitted otherwise.
	Failover bool `json:"failover,omitempty"`
	// Truncated and Interrupted are true when a streamed reply's stream
	// broke after part of it was sent: Code is exactly that part, raw
	// and unreviewed. Omitted otherwise.
	Truncated   bool `json:"truncated,omitempty"`
	Interrupted bool `json:"interrupted,omitempty"`
}

func handleGenerate(g CodeGenerator, limit int64, heartbeat func() time.Duration) echo.HandlerFunc {
	return func(c echo.Context) error {
		in, err := decode[generateRequest](c, limit)
		if err != nil {
			return err
		}
		if in.Source != nil && !keyAllowsSource(c, *in.Source) {
			return sourceNotFound(*in.Source)
		}
		lang := codegen.Python
		if in.Language != nil {
			lang = codegen.Language(*in.Language)
		}
		req := codegen.Request{Prompt: *in.Prompt, Language: lang, Model: deref(in.Model),
			DatasetID: deref(in.DatasetID), Source: deref(in.Source)}
		if wantsStream(c, in.Stream) {
			return streamGenerate(c, g, req, heartbeat())
		}
		res, err := g.Generate(c.Request().Context(), req)
		if err != nil {
			return aboutData(err, req.DatasetID, req.Source)
		}
		if err := stillWanted(c); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, generateBody(res))
	}
}

// streamGenerate answers req as server-sent events, as streamAnalyze does.
func streamGenerate(c echo.Context, g CodeGenerator, req codegen.Request, heartbeat time.Duration) error {
	es := newEventStream(c, heartbeat)
	defer es.close()
	defer es.failOnPanic()
	req.Progress = es
	res, err := g.Generate(es.ctx, req)
	if err != nil {
		err = aboutData(err, req.DatasetID, req.Source)
	} else if res.StreamErr == nil {
		err = stillWanted(c)
	}
	if err != nil {
		if !es.isStarted() {
			return err
		}
		es.fail(err)
		return nil
	}
	if res.StreamErr != nil {
		es.interrupted(res.StreamErr)
	}
	es.send(eventResult, generateBody(res))
	es.send(eventDone, struct{}{})
	return nil
}

// generateBody is the JSON answer to /generate, and a stream's result.
func generateBody(res codegen.Result) generateResponse {
	out := generateResponse{
		Code:        res.Code,
		Language:    string(res.Language),
		IsValid:     res.Review.IsValid,
		Warnings:    res.Review.Warnings,
		Model:       res.Model,
		Circuit:     res.Circuit,
		Provider:    res.Provider,
		Attempts:    res.Attempts,
		Failover:    res.Failover,
		Truncated:   res.StreamErr != nil,
		Interrupted: res.StreamErr != nil,
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if !res.Review.IsValid {
		msg := res.Review.ErrorMessage
		out.ErrorMessage = &msg
	}
	return out
}
