package monitoring_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigilarc/vigil/appliance/monitoring"
)

// The Service makes the prompt's ID and expiry, returns the first result on
// a retry, and reads it back.
func TestPromptService_SendAnswerAndRead(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	n := mustSingle(t, now)
	seedService(t, n.Service)
	ctx := context.Background()
	n.Service.NewID = func() string { return "made-" + n.Service.Now().Format("150405.000") }
	if _, err := n.Service.SendPrompt(ctx, "p", "olivia", monitoring.PromptRequest{DeviceID: "d1", Kind: monitoring.PromptCallBack, TTL: 2 * monitoring.MaxPromptTTL}); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("TTL over the limit: %v", err)
	}
	if _, err := n.Service.SendPrompt(ctx, "p", "olivia", monitoring.PromptRequest{DeviceID: "d1", Kind: "sing"}); !monitoring.IsCode(err, monitoring.CodeInvalid) {
		t.Fatalf("unknown kind: %v", err)
	}
	p, err := n.Service.SendPrompt(ctx, "p", "olivia", monitoring.PromptRequest{DeviceID: "d1", Kind: monitoring.PromptCallBack})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == "" || !p.ExpiresAt.Equal(now.Add(monitoring.DefaultPromptTTL)) || p.SentBy != "olivia" {
		t.Fatalf("prompt %+v", p)
	}
	again, err := n.Service.SendPrompt(ctx, "p", "olivia", monitoring.PromptRequest{DeviceID: "d1", Kind: monitoring.PromptCallBack, Text: "other"})
	if err != nil || again.ID != p.ID || again.Text != "" {
		t.Fatalf("retry = %+v, %v; want the first prompt", again, err)
	}
	ans, err := n.Service.AnswerPrompt(ctx, "ans", "device:d1", monitoring.PromptAnswerRequest{PromptID: p.ID, DeviceID: "d1", Answer: monitoring.AnswerAcknowledged})
	if err != nil || ans.Answer != monitoring.AnswerAcknowledged {
		t.Fatalf("answer = %+v, %v", ans, err)
	}
	read, err := n.Service.Prompt(p.ID)
	if err != nil || read.Answer != monitoring.AnswerAcknowledged {
		t.Fatalf("Prompt = %+v, %v", read, err)
	}
	if _, err := n.Service.Prompt("ghost"); !errors.Is(err, monitoring.ErrNotFound) {
		t.Fatalf("unknown prompt: %v", err)
	}
}
