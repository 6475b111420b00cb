from reftlab.cli import main

main()
