package testserver

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestS3(t *testing.T) {
	srv := S3(t)
	srv.CreateBucket(t, "runnel-test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := srv.Client()
	body := []byte("{\"a\":1}\n{\"a\":2}\n")
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("runnel-test"), Key: aws.String("2024/01/02/03/x.jsonl"), Body: bytes.NewReader(body)})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("runnel-test"), Key: aws.String("2024/01/02/03/x.jsonl")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GetObject returned %q, %v; want %q", got, err, body)
	}
	// The posix backend keeps the object as a file under Root.
	onDisk, err := os.ReadFile(filepath.Join(srv.Root, "runnel-test", "2024", "01", "02", "03", "x.jsonl"))
	if err != nil || !bytes.Equal(onDisk, body) {
		t.Fatalf("object file holds %q, %v; want %q", onDisk, err, body)
	}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("runnel-test")})
	if err != nil || len(list.Contents) != 1 {
		t.Fatalf("ListObjectsV2: %d objects, %v; want 1", len(list.Contents), err)
	}
}
