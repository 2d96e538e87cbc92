// Command conformance plays one conformance scenario (tests/conformance/README.md) through the Go
// client against a running daemon: it prints one line per failed step and exits 1 if any failed.
//
//	conformance -target 127.0.0.1:50051 -scenario tests/conformance/scenarios/scopes.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"modelconfig/clients/go/modelconfig"
	api "modelconfig/clients/go/modelconfig/v1"
)

// stepTimeout bounds each step, as the Python runner's client timeout does.
const stepTimeout = 10 * time.Second

func main() {
	target := flag.String("target", "127.0.0.1:50051", "the daemon's host:port")
	scenario := flag.String("scenario", "", "the scenario's JSON file")
	flag.Parse()
	if *scenario == "" {
		fmt.Fprintln(os.Stderr, "conformance: -scenario is required")
		os.Exit(2)
	}
	failures, err := run(*target, *scenario)
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	for _, failure := range failures {
		fmt.Println(failure)
	}
	if len(failures) > 0 {
		os.Exit(1)
	}
}

type step = map[string]interface{}

// run plays the scenario at path; the failures, one line each (none: it passed).
func run(target, path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var scenario struct {
		Steps []step `json:"steps"`
	}
	if err := json.Unmarshal(raw, &scenario); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	client, err := modelconfig.Dial(target, modelconfig.WithTimeout(stepTimeout))
	if err != nil {
		return nil, err
	}
	defer client.Close()

	saved := map[string]string{}
	for number, rawStep := range scenario.Steps {
		s := substitute(rawStep, saved).(step)
		call, _ := s["call"].(string)
		code, failed, responses, err := play(client, s)
		problem := ""
		if err != nil {
			problem = err.Error()
		} else {
			problem = check(s, code, failed, responses)
		}
		if problem != "" {
			// Later steps build on this one.
			return []string{fmt.Sprintf("%s: step %d (%s): %s", name, number+1, call, problem)}, nil
		}
		if save, ok := s["save"].(map[string]interface{}); ok {
			for key, fieldPath := range save {
				value, err := pick(first(responses), fieldPath.(string))
				if err != nil {
					return []string{fmt.Sprintf("%s: step %d (%s): save %s: %v", name, number+1, call, key, err)}, nil
				}
				saved[key] = value
			}
		}
	}
	return nil, nil
}

// -- calling ----------------------------------------------------------------------------------

// rpc plays one step's call: the responses read, or the call's error.
type rpc func(ctx context.Context, client api.ModelConfigServiceClient, s step) ([]proto.Message, error)

// rpcs maps every RPC's name in the proto to the client's method.
var rpcs = map[string]rpc{
	"ListModels":          unary(api.ModelConfigServiceClient.ListModels),
	"GetModel":            unary(api.ModelConfigServiceClient.GetModel),
	"CreateModel":         unary(api.ModelConfigServiceClient.CreateModel),
	"UpdateModel":         unary(api.ModelConfigServiceClient.UpdateModel),
	"DeleteModel":         unary(api.ModelConfigServiceClient.DeleteModel),
	"GetGlobalSettings":   unary(api.ModelConfigServiceClient.GetGlobalSettings),
	"SetModel":            unary(api.ModelConfigServiceClient.SetModel),
	"ClearAccountModel":   unary(api.ModelConfigServiceClient.ClearAccountModel),
	"ClearGlobalModel":    unary(api.ModelConfigServiceClient.ClearGlobalModel),
	"ResolveForAccount":   unary(api.ModelConfigServiceClient.ResolveForAccount),
	"ResolveForAccounts":  unary(api.ModelConfigServiceClient.ResolveForAccounts),
	"GetModelUsage":       unary(api.ModelConfigServiceClient.GetModelUsage),
	"ListSlots":           unary(api.ModelConfigServiceClient.ListSlots),
	"CreateSlot":          unary(api.ModelConfigServiceClient.CreateSlot),
	"UpdateSlot":          unary(api.ModelConfigServiceClient.UpdateSlot),
	"ListChanges":         unary(api.ModelConfigServiceClient.ListChanges),
	"RevertChange":        unary(api.ModelConfigServiceClient.RevertChange),
	"EstimateCost":        unary(api.ModelConfigServiceClient.EstimateCost),
	"RetireModel":         unary(api.ModelConfigServiceClient.RetireModel),
	"ListAccounts":        unary(api.ModelConfigServiceClient.ListAccounts),
	"ImportOverrides":     clientStream[api.ImportOverridesRequest, *api.ImportOverridesRequest, *api.ImportOverridesResponse](api.ModelConfigServiceClient.ImportOverrides),
	"ApplyConfiguration":  clientStream[api.ApplyConfigurationRequest, *api.ApplyConfigurationRequest, *api.ApplyConfigurationResponse](api.ModelConfigServiceClient.ApplyConfiguration),
	"WatchChanges":        serverStream[api.WatchChangesRequest, *api.WatchChangesRequest, *api.WatchChangesResponse](api.ModelConfigServiceClient.WatchChanges),
	"ExportConfiguration": serverStream[api.ExportConfigurationRequest, *api.ExportConfigurationRequest, *api.ExportConfigurationResponse](api.ModelConfigServiceClient.ExportConfiguration),
}

// message is a pointer to a generated request type, which new(Req) can make.
type message[Req any] interface {
	*Req
	proto.Message
}

func unary[Req any, PReq message[Req], Resp proto.Message](
	method func(api.ModelConfigServiceClient, context.Context, PReq, ...grpc.CallOption) (Resp, error),
) rpc {
	return func(ctx context.Context, client api.ModelConfigServiceClient, s step) ([]proto.Message, error) {
		request := PReq(new(Req))
		if err := parse(s["request"], request); err != nil {
			return nil, err
		}
		response, err := method(client, ctx, request)
		if err != nil {
			return nil, err
		}
		return []proto.Message{response}, nil
	}
}

func clientStream[Req any, PReq message[Req], Resp proto.Message, Stream interface {
	Send(PReq) error
	CloseAndRecv() (Resp, error)
}](
	method func(api.ModelConfigServiceClient, context.Context, ...grpc.CallOption) (Stream, error),
) rpc {
	return func(ctx context.Context, client api.ModelConfigServiceClient, s step) ([]proto.Message, error) {
		values, _ := s["requests"].([]interface{})
		requests := make([]PReq, len(values))
		for i, value := range values {
			requests[i] = PReq(new(Req))
			if err := parse(value, requests[i]); err != nil {
				return nil, err
			}
		}
		stream, err := method(client, ctx)
		if err != nil {
			return nil, err
		}
		for _, request := range requests {
			// A refused send means the call ended: CloseAndRecv reports its status.
			if err := stream.Send(request); err != nil {
				break
			}
		}
		response, err := stream.CloseAndRecv()
		if err != nil {
			return nil, err
		}
		return []proto.Message{response}, nil
	}
}

func serverStream[Req any, PReq message[Req], Resp proto.Message, Stream interface {
	Recv() (Resp, error)
}](
	method func(api.ModelConfigServiceClient, context.Context, PReq, ...grpc.CallOption) (Stream, error),
) rpc {
	return func(ctx context.Context, client api.ModelConfigServiceClient, s step) ([]proto.Message, error) {
		request := PReq(new(Req))
		if err := parse(s["request"], request); err != nil {
			return nil, err
		}
		take := 1
		if n, ok := s["take"].(float64); ok {
			take = int(n)
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // after `take` responses: cancels the call
		stream, err := method(client, ctx, request)
		if err != nil {
			return nil, err
		}
		var taken []proto.Message
		for len(taken) < take {
			response, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			taken = append(taken, response)
		}
		return taken, nil
	}
}

// parse reads a request given in the proto3 JSON mapping.
func parse(value interface{}, into proto.Message) error {
	if value == nil {
		value = map[string]interface{}{}
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("request %s: %w", raw, err)
	}
	return nil
}

// play makes the step's call: the status code's name, the error's reason, metadata and message
// (when it failed) and the responses in their generic JSON form (when it succeeded). A non-nil
// error is a problem of the step itself (an unknown call, a request that does not parse).
func play(client *modelconfig.Client, s step) (string, map[string]interface{}, []interface{}, error) {
	call, _ := s["call"].(string)
	method, ok := rpcs[call]
	if !ok {
		return "", nil, nil, fmt.Errorf("no such RPC %q", call)
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	if headers, ok := s["metadata"].(map[string]interface{}); ok {
		for key, value := range headers {
			ctx = metadata.AppendToOutgoingContext(ctx, key, fmt.Sprint(value))
		}
	}
	responses, err := method(ctx, client, s)
	var failed *modelconfig.Error
	if errors.As(err, &failed) {
		metadata := map[string]interface{}{}
		for key, value := range failed.Metadata {
			metadata[key] = value
		}
		return modelconfig.CodeName(failed.Code), map[string]interface{}{
			"reason": failed.Reason, "metadata": metadata, "message": failed.Message,
		}, nil, nil
	}
	if err != nil {
		return "", nil, nil, err
	}
	asJSON := make([]interface{}, len(responses))
	printer := protojson.MarshalOptions{UseProtoNames: true}
	for i, response := range responses {
		raw, err := printer.Marshal(response)
		if err != nil {
			return "", nil, nil, err
		}
		if err := json.Unmarshal(raw, &asJSON[i]); err != nil {
			return "", nil, nil, err
		}
	}
	return "OK", nil, asJSON, nil
}

// -- checking (as tests/conformance/runner.py does) -------------------------------------------

var savedName = regexp.MustCompile(`\$\{(\w+)\}`)

// substitute replaces `${name}` in any string by a saved value.
func substitute(value interface{}, saved map[string]string) interface{} {
	switch v := value.(type) {
	case string:
		return savedName.ReplaceAllStringFunc(v, func(found string) string {
			return saved[savedName.FindStringSubmatch(found)[1]]
		})
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, item := range v {
			out[i] = substitute(item, saved)
		}
		return out
	case map[string]interface{}:
		out := make(map[string]interface{}, len(v))
		for key, item := range v {
			out[key] = substitute(item, saved)
		}
		return out
	}
	return value
}

// check says what differs between a step's expectation and what happened ("": nothing).
func check(s step, code string, failed map[string]interface{}, responses []interface{}) string {
	expect, _ := s["expect"].(map[string]interface{})
	want := "OK"
	if c, ok := expect["code"].(string); ok {
		want = c
	}
	if code != want {
		detail := ""
		if failed != nil {
			detail = fmt.Sprintf(" (%v: %v)", failed["reason"], failed["message"])
		}
		return fmt.Sprintf("expected %s, got %s%s", want, code, detail)
	}
	if reason, ok := expect["reason"]; ok && (failed == nil || failed["reason"] != reason) {
		return fmt.Sprintf("expected reason %v, got %v", reason, failed["reason"])
	}
	if expected, ok := expect["metadata"]; ok {
		var actual interface{} = map[string]interface{}{}
		if failed != nil {
			actual = failed["metadata"]
		}
		if found := mismatch(expected, actual, "metadata"); found != "" {
			return found
		}
	}
	if expected, ok := expect["response"]; ok {
		return mismatch(expected, first(responses), "")
	}
	if expected, ok := expect["responses"]; ok {
		return mismatch(expected, responses, "responses")
	}
	return ""
}

// mismatch says where actual fails to contain expected (README.md's subset match), or "".
func mismatch(expected, actual interface{}, where string) string {
	switch want := expected.(type) {
	case map[string]interface{}:
		got, ok := actual.(map[string]interface{})
		if !ok {
			if where == "" {
				where = "response"
			}
			return fmt.Sprintf("%s: expected an object, got %s", where, dump(actual))
		}
		for key, value := range want {
			item, ok := got[key]
			if !ok {
				return fmt.Sprintf("%s.%s: missing (expected %s)", where, key, dump(value))
			}
			if found := mismatch(value, item, where+"."+key); found != "" {
				return found
			}
		}
		return ""
	case []interface{}:
		var got []interface{}
		switch a := actual.(type) {
		case []interface{}:
			got = a
		default:
			return fmt.Sprintf("%s: expected a list, got %s", where, dump(actual))
		}
		openEnded := len(want) > 0 && want[len(want)-1] == "..."
		items := want
		if openEnded {
			items = want[:len(want)-1]
		}
		if len(got) < len(items) || (!openEnded && len(got) != len(items)) {
			return fmt.Sprintf("%s: expected %d items, got %d", where, len(items), len(got))
		}
		for i, value := range items {
			if found := mismatch(value, got[i], fmt.Sprintf("%s[%d]", where, i)); found != "" {
				return found
			}
		}
		return ""
	}
	if expected != actual {
		return fmt.Sprintf("%s: expected %s, got %s", where, dump(expected), dump(actual))
	}
	return ""
}

func dump(value interface{}) string {
	raw, err := json.Marshal(value)
	if err != nil {
		return fmt.Sprint(value)
	}
	return string(raw)
}

func first(responses []interface{}) interface{} {
	if len(responses) == 0 {
		return nil
	}
	return responses[0]
}

// pick reads a dotted path (list indexes as numbers) from a response's JSON form, as a string.
func pick(value interface{}, path string) (string, error) {
	for _, part := range strings.Split(path, ".") {
		switch v := value.(type) {
		case []interface{}:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(v) {
				return "", fmt.Errorf("no item %q in %s", part, dump(v))
			}
			value = v[i]
		case map[string]interface{}:
			item, ok := v[part]
			if !ok {
				return "", fmt.Errorf("no field %q in %s", part, dump(v))
			}
			value = item
		default:
			return "", fmt.Errorf("cannot read %q from %s", part, dump(v))
		}
	}
	switch v := value.(type) {
	case string:
		return v, nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return dump(value), nil
}
