package testserver

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Moto's server takes a port of its own and answers there.
func TestMoto(t *testing.T) {
	t.Parallel()
	s := Moto(t)
	_, err := s.Client().ListTables(context.Background(), &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("ListTables on %s: %v", s.URL, err)
	}
}
