"""The demo: mock LLM, retriever, RAG chatbot, traffic generator and the `llmlens demo` orchestrator."""
