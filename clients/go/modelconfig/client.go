// Package modelconfig is the Go client of the modelconfig daemon: a connection that carries the
// generated modelconfig.v1 client, a bearer token, a default per-call deadline, and failed calls
// returned as *Error with the google.rpc details unpacked.
//
//	client, err := modelconfig.Dial("127.0.0.1:50051")
//	if err != nil { ... }
//	defer client.Close()
//	resolved, err := client.ResolveForAccount(ctx, &modelconfigv1.ResolveForAccountRequest{AccountId: "acme"})
package modelconfig

import (
	"context"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	modelconfigv1 "modelconfig/clients/go/modelconfig/v1"
)

// DefaultTimeout is the deadline a unary call gets when its context has none.
const DefaultTimeout = 10 * time.Second

// Client calls the daemon. Every method of the generated ModelConfigServiceClient is promoted,
// so client.ResolveForAccount(ctx, request) works as it does on the generated client; its
// errors are *Error.
type Client struct {
	modelconfigv1.ModelConfigServiceClient
	conn *grpc.ClientConn
}

type options struct {
	token   string
	timeout time.Duration
	dial    []grpc.DialOption
	secure  bool
}

// Option configures Dial.
type Option func(*options)

// WithToken sends `authorization: Bearer <token>` with every call.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithTimeout sets the deadline of unary calls whose context has none (DefaultTimeout unless
// set; zero means no deadline). Streams (WatchChanges, ExportConfiguration, ImportOverrides,
// ApplyConfiguration) never get one: they last as long as their context.
func WithTimeout(timeout time.Duration) Option {
	return func(o *options) { o.timeout = timeout }
}

// WithDialOptions passes options to grpc.Dial. Give transport credentials here (for example
// grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, ""))) to use TLS instead
// of the default plaintext connection.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, opts...) }
}

// WithTransportCredentials is WithDialOptions for a secure connection: it replaces the default
// plaintext transport.
func WithTransportCredentials(option grpc.DialOption) Option {
	return func(o *options) {
		o.dial = append(o.dial, option)
		o.secure = true
	}
}

// Dial connects to the daemon at address (host:port). The connection is made in the background:
// a daemon that is not there yet shows as an UNAVAILABLE *Error on the first call.
func Dial(address string, opts ...Option) (*Client, error) {
	o := options{timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	dial := []grpc.DialOption{
		grpc.WithUnaryInterceptor(o.unary),
		grpc.WithStreamInterceptor(o.stream),
	}
	if !o.secure {
		dial = append(dial, grpc.WithInsecure())
	}
	conn, err := grpc.Dial(address, append(dial, o.dial...)...)
	if err != nil {
		return nil, err
	}
	return &Client{ModelConfigServiceClient: modelconfigv1.NewModelConfigServiceClient(conn), conn: conn}, nil
}

// Conn is the underlying connection, for other services on the same daemon (health, reflection).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection; calls in flight fail with CANCELLED.
func (c *Client) Close() error { return c.conn.Close() }

func (o *options) outgoing(ctx context.Context) context.Context {
	if o.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+o.token)
}

func (o *options) unary(
	ctx context.Context, method string, req, reply interface{},
	cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
) error {
	if _, has := ctx.Deadline(); !has && o.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	return FromError(invoker(o.outgoing(ctx), method, req, reply, cc, opts...))
}

func (o *options) stream(
	ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption,
) (grpc.ClientStream, error) {
	stream, err := streamer(o.outgoing(ctx), desc, cc, method, opts...)
	if err != nil {
		return nil, FromError(err)
	}
	return typedStream{stream}, nil
}

// typedStream returns the stream's errors as *Error; io.EOF (the end of a stream) stays io.EOF.
type typedStream struct{ grpc.ClientStream }

func (s typedStream) SendMsg(m interface{}) error { return streamError(s.ClientStream.SendMsg(m)) }

func (s typedStream) RecvMsg(m interface{}) error { return streamError(s.ClientStream.RecvMsg(m)) }

func (s typedStream) CloseSend() error { return streamError(s.ClientStream.CloseSend()) }

func streamError(err error) error {
	if err == io.EOF {
		return err
	}
	return FromError(err)
}
