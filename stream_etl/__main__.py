from stream_etl.cli import main

main()
