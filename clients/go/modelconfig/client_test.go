package modelconfig_test

// These tests run the real daemon (the modelconfigd console script of the repository's .venv,
// or $MODELCONFIGD) on a free port over a fresh SQLite file, one daemon per test.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"modelconfig/clients/go/modelconfig"
	modelconfigv1 "modelconfig/clients/go/modelconfig/v1"
)

// servingLine is SERVING_LINE of tests/e2e/process_helpers.py.
var servingLine = regexp.MustCompile(`^modelconfigd serving on (\S+):(\d+) \(revision (\d+)(, (\d+) workers)?\)$`)

// daemonCommand is $MODELCONFIGD, else .venv/bin/modelconfigd of this checkout.
func daemonCommand(t *testing.T) string {
	if command := os.Getenv("MODELCONFIGD"); command != "" {
		return command
	}
	command, err := filepath.Abs("../../../.venv/bin/modelconfigd")
	if err != nil {
		t.Fatal(err)
	}
	return command
}

// startDaemon runs modelconfigd with args on a free loopback port until the test ends and
// returns its address.
func startDaemon(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	args = append([]string{"--listen", "127.0.0.1:0", "--database-url", "sqlite:///" + filepath.Join(dir, "x.db")}, args...)
	cmd := exec.Command(daemonCommand(t), args...)
	cmd.Env = append(withoutModelconfigSettings(os.Environ()), "MODELCONFIG_DRAIN_SECONDS=0", "PYTHONUNBUFFERED=1")
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its process group: workers too
		_ = cmd.Wait()
		stderr.Close()
	})
	address := make(chan string, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			if match := servingLine.FindStringSubmatch(lines.Text()); match != nil {
				address <- match[1] + ":" + match[2]
			}
		}
		close(address)
	}()
	select {
	case found, ok := <-address:
		if ok {
			return found
		}
	case <-time.After(30 * time.Second):
	}
	log, _ := os.ReadFile(stderr.Name())
	t.Fatalf("modelconfigd printed no serving line; stderr:\n%s", log)
	return ""
}

func withoutModelconfigSettings(env []string) []string {
	kept := env[:0:0]
	for _, entry := range env {
		if !strings.HasPrefix(entry, "MODELCONFIG_") {
			kept = append(kept, entry)
		}
	}
	return kept
}

func dial(t *testing.T, address string, opts ...modelconfig.Option) *modelconfig.Client {
	t.Helper()
	client, err := modelconfig.Dial(address, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func asError(t *testing.T, err error) *modelconfig.Error {
	t.Helper()
	var typed *modelconfig.Error
	if !errors.As(err, &typed) {
		t.Fatalf("expected a *modelconfig.Error, got %T: %v", err, err)
	}
	return typed
}

func TestResolveForAccountUsesTheSeededGlobalSetting(t *testing.T) {
	client := dial(t, startDaemon(t))
	resolved, err := client.ResolveForAccount(context.Background(), &modelconfigv1.ResolveForAccountRequest{
		AccountId: "acme", Slots: []string{"openai_model"},
	})
	if err != nil {
		t.Fatal(err)
	}
	slots := resolved.GetSlots()
	if len(slots) != 1 || slots[0].GetSlot() != "openai_model" || slots[0].GetModel().GetModelName() == "" {
		t.Fatalf("expected openai_model resolved to a model, got %v", resolved)
	}
}

func TestSetModelWithoutScopeIsInvalidArgumentScopeRequired(t *testing.T) {
	client := dial(t, startDaemon(t))
	_, err := client.SetModel(context.Background(), &modelconfigv1.SetModelRequest{
		Slot: "openai_model", ModelRef: &modelconfigv1.SetModelRequest_ModelName{ModelName: "gpt-3.5-turbo"},
	})
	typed := asError(t, err)
	if typed.Code != codes.InvalidArgument || typed.Reason != "SCOPE_REQUIRED" {
		t.Fatalf("expected INVALID_ARGUMENT SCOPE_REQUIRED, got %v", typed)
	}
	if len(typed.FieldViolations) != 1 || typed.FieldViolations[0].GetField() != "scope" {
		t.Fatalf("expected one field violation on scope, got %v", typed.FieldViolations)
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("status.Code reads %v from the *Error", status.Code(err))
	}
}

func TestNotFoundCarriesTheErrorInfoMetadata(t *testing.T) {
	client := dial(t, startDaemon(t))
	_, err := client.GetModel(context.Background(), &modelconfigv1.GetModelRequest{
		ModelRef: &modelconfigv1.GetModelRequest_ModelId{ModelId: 999},
	})
	typed := asError(t, err)
	if typed.Code != codes.NotFound || typed.Reason != "MODEL_NOT_FOUND" || typed.Metadata["model_id"] != "999" {
		t.Fatalf("expected NOT_FOUND MODEL_NOT_FOUND with model_id 999, got %v (metadata %v)", typed, typed.Metadata)
	}
}

func TestWatchChangesDeliversACommittedChangeUntilCancelled(t *testing.T) {
	client := dial(t, startDaemon(t))
	ctx := context.Background()
	if _, err := client.SetModel(ctx, &modelconfigv1.SetModelRequest{
		Slot: "openai_model", ModelRef: &modelconfigv1.SetModelRequest_ModelName{ModelName: "gpt-5-mini"}, AccountId: "acme",
	}); err != nil {
		t.Fatal(err)
	}
	watching, cancel := context.WithTimeout(ctx, 10*time.Second)
	stream, err := client.WatchChanges(watching, &modelconfigv1.WatchChangesRequest{StartRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	changes := first.GetChanges()
	if len(changes) != 1 || changes[0].GetAccountId() != "acme" || changes[0].GetRevision() != 2 {
		t.Fatalf("expected acme's change at revision 2, got %v", first)
	}
	cancel()
	if _, err := stream.Recv(); asError(t, err).Code != codes.Canceled {
		t.Fatalf("expected CANCELLED after cancel, got %v", err)
	}
}

func TestTheTokenIsSentAsABearerToken(t *testing.T) {
	token := "go-client-test-token"
	digest := sha256.Sum256([]byte(token))
	tokens := filepath.Join(t.TempDir(), "tokens.toml")
	entry := fmt.Sprintf("[[tokens]]\nname = \"go-test\"\nrole = \"reader\"\nsha256 = %q\n", hex.EncodeToString(digest[:]))
	if err := os.WriteFile(tokens, []byte(entry), 0o600); err != nil {
		t.Fatal(err)
	}
	address := startDaemon(t, "--tokens-file", tokens)
	request := &modelconfigv1.ListSlotsRequest{}

	_, err := dial(t, address).ListSlots(context.Background(), request)
	if asError(t, err).Code != codes.Unauthenticated {
		t.Fatalf("expected UNAUTHENTICATED without a token, got %v", err)
	}
	if _, err := dial(t, address, modelconfig.WithToken(token)).ListSlots(context.Background(), request); err != nil {
		t.Fatalf("with the token: %v", err)
	}
}

func TestTheDefaultDeadlineBoundsUnaryCalls(t *testing.T) {
	// Nothing answers on a port that refuses: the call waits for the connection until the
	// client's deadline, then fails as DEADLINE_EXCEEDED rather than hanging.
	client := dial(t, "127.0.0.1:1", modelconfig.WithTimeout(200*time.Millisecond))
	started := time.Now()
	_, err := client.ListSlots(context.Background(), &modelconfigv1.ListSlotsRequest{}, grpc.WaitForReady(true))
	if asError(t, err).Code != codes.DeadlineExceeded || time.Since(started) > 5*time.Second {
		t.Fatalf("expected DEADLINE_EXCEEDED after about 200ms, got %v after %v", err, time.Since(started))
	}
}
